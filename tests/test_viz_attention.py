"""The attention over training: training_statistics on hand-made branch tensors (checked by an independent numpy
computation), its figure from log.csv, and the figure of what the fusion changes."""

from __future__ import annotations

import csv
import math

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

from ranlib import build_model
from ranlib.attention_stats import TRAINING_KEYS
from ranlib.data import boundary_band, mixed_boundary_band
from ranlib.model import RANOutput
from ranlib.viz import plot_attention_over_training, plot_fusion_changes, training_statistics

K = 3


class Replay(nn.Module):
    """A stand-in model that returns prepared outputs in order, whatever the images: hand-made branch tensors."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs = list(outputs)
        self.conv_rev = nn.Identity()  # has a reverse branch
        self.num_classes, self.variant = K, "ran"  # what ranlib reads from a RAN
        self.anchor = nn.Parameter(torch.zeros(()))  # the device the statistics run on

    def forward(self, images):
        return self.outputs.pop(0)


def _hand_made(attention: bool = True):
    """Two batches (2 and 1 images of 36x36): 12-px blocks of labels with void, random scores around a positive
    offset."""
    g = torch.Generator().manual_seed(0)
    masks = torch.randint(0, K, (3, 3, 3), generator=g).repeat_interleave(12, 1).repeat_interleave(12, 2)
    masks[torch.rand(masks.shape, generator=g) < 0.05] = 255
    original = torch.randn(3, K, 36, 36, generator=g) * 3 + 1.0
    reverse = torch.randn(3, K, 36, 36, generator=g) * 2
    a = torch.sigmoid(-original)
    fused = original + a * reverse if attention else original + reverse
    outputs = [RANOutput(original[s], reverse[s], a[s] if attention else None, fused[s])
               for s in (slice(0, 2), slice(2, 3))]
    batches = [(torch.zeros(2, 3, 36, 36), masks[:2]), (torch.zeros(1, 3, 36, 36), masks[2:])]
    return outputs, batches, masks


def _expected(masks, original, attention, fused, width=4):
    """The same statistics, computed here with numpy, one class at a time."""
    m, o, a, f = masks.numpy(), original.numpy(), attention.numpy(), fused.numpy()
    labelled = m != 255
    mixed = mixed_boundary_band(masks, width).numpy()
    boundary = boundary_band(masks, width).numpy()
    out = {}
    for name, region in (("mixed", mixed & labelled), ("rest", ~mixed & labelled)):
        n = region.sum()
        open_other = sum(((a[:, c] > 0.5) & region & (m != c)).sum() for c in range(K))
        out[f"attn_open_other_{name}"] = open_other / (n * (K - 1))
        out[f"attn_change_{name}"] = np.abs(f - o).sum(1)[region].sum() / np.abs(o).sum(1)[region].sum()
    out["attn_original_mean"] = o.mean(1)[labelled].mean()
    before, after = o.argmax(1), f.argmax(1)
    for name, region in (("mixed", mixed), ("other", boundary & ~mixed), ("interior", ~boundary)):
        where = region & labelled
        out[f"fusion_fixed_{name}"] = ((before != m) & (after == m) & where).sum()
        out[f"fusion_broken_{name}"] = ((before == m) & (after != m) & where).sum()
    return out


def test_training_statistics_on_hand_made_tensors():
    outputs, batches, masks = _hand_made()
    whole = RANOutput(*(torch.cat([o[i] for o in outputs]) for i in range(4)))
    expected = _expected(masks, whole.original, whole.attention, whole.fused)
    got = training_statistics(Replay(outputs), batches)
    assert tuple(got) == TRAINING_KEYS and all(isinstance(v, float) for v in got.values())
    assert got == pytest.approx({k: float(v) for k, v in expected.items()}, rel=1e-6)
    assert got["fusion_fixed_mixed"] > 0 and got["fusion_broken_interior"] > 0  # the case exercises the counts
    assert 0 < got["attn_open_other_mixed"] < 1 and 0 < got["attn_open_other_rest"] < 1


def test_training_statistics_of_the_subtract_variant_have_no_attention_columns():
    outputs, batches, masks = _hand_made(attention=False)
    got = training_statistics(Replay(outputs), batches)
    assert math.isnan(got["attn_open_other_mixed"]) and math.isnan(got["attn_open_other_rest"])
    original = torch.cat([o.original for o in outputs])
    fused = torch.cat([o.fused for o in outputs])
    expected = _expected(masks, original, torch.zeros_like(original), fused)
    for key in ("attn_change_mixed", "attn_original_mean", "fusion_fixed_mixed", "fusion_broken_other"):
        assert got[key] == pytest.approx(float(expected[key]), rel=1e-6)


def test_training_statistics_of_a_real_model(one_thread):
    torch.manual_seed(0)
    model = build_model("resnet18", variant="ran", num_classes=K).train()
    masks = torch.zeros(2, 32, 32, dtype=torch.long)
    masks[:, 12:, :16], masks[:, 12:, 16:] = 1, 2  # a mixed band around column 16 and pixels away from it
    batch = (torch.randn(2, 3, 32, 32), masks)
    got = training_statistics(model, [batch])
    assert tuple(got) == TRAINING_KEYS and model.training  # the model goes back to training mode
    assert not any(math.isnan(v) for v in got.values())
    with pytest.raises(ValueError, match="baseline"):
        training_statistics(build_model("resnet18", variant="baseline", num_classes=K), [batch])


def _write_log(path, scale=1.0):
    """A log.csv as training writes it: training rows (loss) and evaluation rows (val_* and the statistics)."""
    columns = ["iteration", "loss", "val_miou", *TRAINING_KEYS]
    rows = [{"iteration": 10, "loss": 1.0}, {"iteration": 20, "loss": 0.8, }]
    for it in (20, 40):
        rows.append({"iteration": it, "val_miou": 0.5} | {k: scale * (i + 1) * it / 40
                                                           for i, k in enumerate(TRAINING_KEYS)})
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def assert_legend_shows_line_styles(ax, expected):
    """The legend's handles carry each line's style and marker, and are long enough that a dashed handle shows a
    dash and a gap on each side of its marker (which sits in the middle and would otherwise hide the gap)."""
    legend = ax.get_legend()
    handles = legend.legend_handles
    assert [(t.get_text(), h.get_linestyle(), h.get_marker()) for t, h in zip(legend.get_texts(), handles,
                                                                              strict=True)] == expected
    half = legend.handlelength * legend.prop.get_size_in_points() / 2  # points from the handle's end to its marker
    for handle in handles:
        if handle.get_linestyle() == "--":
            on, off = (v * handle.get_linewidth() for v in matplotlib.rcParams["lines.dashed_pattern"])
            assert half > on + off + handle.get_markersize() / 2, f"{half} pt cannot show a dash and a gap"


def test_attention_over_training_figure(tmp_path):
    log = _write_log(tmp_path / "log.csv")
    fig = plot_attention_over_training(tmp_path)  # a run directory
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == [
        "attention open at other classes", "mean original score (shared offset)",
        "how much the fusion moves the scores", "fusion changes in the mixed band", "fusion changes elsewhere"]
    index = {k: i + 1 for i, k in enumerate(TRAINING_KEYS)}  # column k holds index[k] * iteration / 40
    mixed, rest = axes[0].get_lines()
    assert mixed.get_xdata().tolist() == [20, 40] and mixed.get_label() == "mixed band"
    assert mixed.get_ydata().tolist() == pytest.approx([index["attn_open_other_mixed"] * t for t in (0.5, 1)])
    assert rest.get_ydata().tolist() == pytest.approx([index["attn_open_other_rest"] * t for t in (0.5, 1)])
    fixed, broken = axes[4].get_lines()  # elsewhere = other boundary band + interior
    total = index["fusion_fixed_other"] + index["fusion_fixed_interior"]
    assert fixed.get_ydata().tolist() == pytest.approx([total * 0.5, total])
    assert broken.get_label() == "broken" and broken.get_linestyle() == "--"

    two = plot_attention_over_training({"seed 0": log, "seed 1": _write_log(tmp_path / "other.csv", 2.0)})
    labels = [line.get_label() for line in two.axes[3].get_lines()]
    assert labels == ["seed 0: fixed", "seed 0: broken", "seed 1: fixed", "seed 1: broken"]
    assert two.axes[3].get_lines()[0].get_color() != two.axes[3].get_lines()[2].get_color()
    assert [t.get_text() for t in two.legends[0].get_texts()] == ["seed 0", "seed 1"]  # one colour per run
    assert [t.get_text() for t in two.axes[3].get_legend().get_texts()] == ["fixed", "broken"]
    assert_legend_shows_line_styles(fig.axes[0], [("mixed band", "-", "o"), ("rest", "--", "s")])
    assert_legend_shows_line_styles(two.axes[4], [("fixed", "-", "o"), ("broken", "--", "x")])

    baseline = tmp_path / "baseline.csv"
    baseline.write_text("iteration,loss,val_miou\n10,1.0,\n20,,0.4\n")
    texts = [t.get_text() for ax in plot_attention_over_training(baseline).axes for t in ax.texts]
    assert texts == ["not in this log"] * 5
    (tmp_path / "bad.csv").write_text("step,loss\n1,2\n")
    with pytest.raises(ValueError, match="no 'iteration' column"):
        plot_attention_over_training(tmp_path / "bad.csv")


def _changes(fixed, broken, still, pixels):
    regions = dict(zip(("mixed_boundary", "other_boundary", "interior"), zip(fixed, broken, still, pixels,
                                                                             strict=True), strict=True))
    result = {"width": 4} | {r: {"pixels": n, "fixed": f, "broken": b, "still_wrong": s,
                                 "changed": f + b + s} for r, (f, b, s, n) in regions.items()}
    return result


def test_fusion_changes_figure():
    result = _changes(fixed=(30, 4, 0), broken=(10, 2, 5), still=(5, 0, 0), pixels=(1000, 400, 5000))
    fig = plot_fusion_changes(result)
    ax = fig.axes[0]
    heights = [round(p.get_height(), 6) for p in ax.patches]  # fixed bars, then broken, then still wrong
    assert heights == pytest.approx([3.0, 1.0, 0.0, 1.0, 0.5, 0.1, 0.5, 0.0, 0.0])
    assert [t.get_text() for t in ax.texts][:3] == ["30", "4", "0"]
    assert "net +20" in ax.get_xticklabels()[0].get_text()
    two = plot_fusion_changes({"RAN": result, "subtract": _changes((0,) * 3, (0,) * 3, (0,) * 3, (0,) * 3)})
    assert [a.get_title().split("\n")[0] for a in two.axes] == ["RAN", "subtract"]
