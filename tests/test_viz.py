"""Visualisation: palette values, figure panels and shared colour scales, the region finder, the explorer."""

from __future__ import annotations

import math
import sys

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from matplotlib.image import AxesImage

from ranlib import build_model
from ranlib.viz import (
    colorize,
    explorer,
    find_mixed_boundary_regions,
    find_regions,
    overlay,
    plot_branches,
    plot_comparison,
    plot_confusion_matrix,
    plot_iou_bars,
    plot_palette,
    plot_segmentation,
    plot_training_curves,
    plot_trimap,
)
from ranlib.viz.comparison import crop_accuracy
from ranlib.viz.palette import PALETTE, to_rgb
from ranlib.viz.regions import confusion_map

matplotlib.use("Agg")  # figures are drawn off-screen
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

K = 4  # classes in these tests: background and three objects
NAMES = ["background", "cat", "dog", "sofa"]


def two_object_mask(size: int = 64) -> torch.Tensor:
    """A cat (1) touching a dog (2): one vertical mixed boundary at column 32, rows 8..40."""
    mask = torch.zeros(size, size, dtype=torch.long)
    mask[8:40, 8:32] = 1
    mask[8:40, 32:56] = 2
    return mask


def panel_axes(fig) -> list:
    """The figure's plotting axes, colour bars left out (they have no title)."""
    return [ax for ax in fig.axes if ax.get_title()]


def images_of(ax) -> list[AxesImage]:
    return [a for a in ax.get_children() if isinstance(a, AxesImage)]


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {"baseline": build_model("resnet18", variant="baseline", num_classes=K).eval(),
            "RAN": build_model("resnet18", variant="ran", num_classes=K).eval()}


@pytest.fixture(scope="module")
def dataset():
    g = torch.Generator().manual_seed(0)
    images = [TF.normalize(torch.rand(3, 48, 48, generator=g), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
              for _ in range(2)]
    return [(images[0], two_object_mask(48)), (images[1], two_object_mask(48).flip(1))]


@pytest.fixture(autouse=True)
def no_pyplot_figures():
    """Library figures never go through pyplot (so nothing calls plt.show() or leaks figures)."""
    yield
    assert plt.get_fignums() == []


def test_palette_is_the_voc_devkit_colour_map():
    expected = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0), 4: (0, 0, 128),
                15: (192, 128, 128), 20: (0, 64, 128), 255: (224, 224, 192)}  # VOC2012 devkit values
    for label, rgb in expected.items():
        assert tuple(PALETTE[label]) == rgb
    assert len({tuple(c) for c in PALETTE}) == 256
    fig = plot_palette(NAMES)
    assert [t.get_text() for t in fig.axes[0].texts][-1].endswith("ignore (255)")


def test_colorize_overlay_and_denormalisation():
    mask = torch.tensor([[0, 1], [2, 255]])
    assert (colorize(mask) == np.array([[[0, 0, 0], [128, 0, 0]], [[0, 128, 0], [224, 224, 192]]])).all()
    image = torch.full((3, 2, 2), 0.5)
    blended = overlay(image, mask, alpha=0.5)
    assert np.allclose(blended[0, 0], 0.5)  # background left untinted
    assert np.allclose(blended[0, 1], [0.5 * 0.5 + 0.5 * 128 / 255, 0.25, 0.25])
    raw = torch.rand(3, 8, 8)
    normalised = TF.normalize(raw, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    assert np.allclose(to_rgb(normalised), raw.permute(1, 2, 0).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        overlay(image, torch.zeros(3, 3, dtype=torch.long))


def test_plot_segmentation_panels_and_legend():
    mask = two_object_mask()
    fig = plot_segmentation(torch.rand(3, 64, 64), mask, torch.zeros_like(mask), NAMES)
    assert [ax.get_title() for ax in fig.axes] == ["image", "ground truth", "prediction"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["background (not tinted)", "cat", "dog"]


def test_plot_branches_shares_one_symmetric_scale(models):
    image = torch.rand(3, 40, 40)
    out = models["RAN"](image[None])
    fig = plot_branches(out, image, 2, class_names=NAMES)
    axes = panel_axes(fig)
    assert [ax.get_title() for ax in axes] == ["image", "original", "reverse", "attention", "fused"]
    assert "dog" in fig.get_suptitle()
    logit_images = [images_of(ax)[0] for ax in axes if ax.get_title() in ("original", "reverse", "fused")]
    # Independent computation: each branch's class-2 map bilinearly upsampled to the image.
    expected = {b: F.interpolate(getattr(out, b)[:, 2:3], size=(40, 40), mode="bilinear")[0, 0].detach()
                for b in ("original", "reverse", "fused")}
    vmax = max(float(m.abs().max()) for m in expected.values())
    for im, branch in zip(logit_images, ("original", "reverse", "fused"), strict=True):
        assert np.allclose(im.get_array(), expected[branch].numpy(), atol=1e-6)
        assert im.get_clim() == pytest.approx((-vmax, vmax))
        assert im.get_cmap().name == "RdBu_r"
    attention = images_of(axes[3])[0]
    assert attention.get_clim() == (0.0, 1.0) and attention.get_cmap().name == "cividis"
    assert 0 <= attention.get_array().min() and attention.get_array().max() <= 1


def test_plot_branches_baseline_and_crop(models):
    image = torch.rand(3, 40, 40)
    fig = plot_branches(models["baseline"](image[None]), image, 1, box=(4, 8, 16, 24), mask=two_object_mask(40))
    axes = {ax.get_title(): ax for ax in panel_axes(fig)}
    outlined = [title for title, ax in axes.items() if ax.collections]  # the cat's outline (a contour)
    assert outlined == ["image", "original", "fused"]
    for missing in ("reverse", "attention"):
        assert images_of(axes[missing]) == []
        assert [t.get_text() for t in axes[missing].texts] == ["not in this variant"]
    assert images_of(axes["original"])[0].get_array().shape == (16, 24)
    assert images_of(axes["image"])[0].get_array().shape == (16, 24, 3)
    with pytest.raises(ValueError, match="out of range"):
        plot_branches(models["baseline"](image[None]), image, K)


def test_region_finder_on_hand_drawn_masks():
    mask = two_object_mask()
    regions = find_mixed_boundary_regions(mask, width=3, crop_size=24)
    assert regions
    for r in regions:
        assert r.left <= 32 < r.left + r.width  # every crop holds the cat/dog boundary at column 32 ...
        assert r.top < 40 and r.top + r.height > 8  # ... where it runs, rows 8..40
        assert sorted(r.classes) == [1, 2]  # the two objects; background and void left out
    bordered = mask.clone()
    bordered[8:40, 31:33] = 255  # a VOC-style void border between the two objects
    assert [sorted(r.classes) for r in find_mixed_boundary_regions(bordered, width=3, crop_size=24)] == \
        [[1, 2]] * len(regions)
    one = torch.zeros(64, 64, dtype=torch.long)
    one[10:50, 10:50] = 1
    assert find_mixed_boundary_regions(one, width=3) == []
    apart = one.clone()  # two objects that touch only the background: no mixed boundary
    apart[10:50, 30:50] = 0
    apart[10:50, 40:50] = 2
    assert find_mixed_boundary_regions(apart, width=3) == []


def test_region_finder_ranks_by_confusion():
    # Two mixed boundaries: cat|dog on top, cat|sofa below. Logits are sure everywhere except on the
    # lower objects, where cat and sofa tie: the lower boundary must come first with confusion 1.
    mask = torch.zeros(64, 64, dtype=torch.long)
    mask[2:26, 4:32], mask[2:26, 32:60] = 1, 2
    mask[38:62, 4:32], mask[38:62, 32:60] = 1, 3
    logits = 10.0 * F.one_hot(mask, K).permute(2, 0, 1).float()  # (K, H, W), margin ~1
    logits[1:4:2, 32:] = 5.0  # cat and sofa scores equal below row 32
    regions = find_mixed_boundary_regions(mask, logits, width=3, crop_size=16, max_overlap=0.0)
    assert regions[0].top >= 32 and regions[0].score == pytest.approx(1.0)
    assert set(regions[0].classes) == {1, 3}
    top = [r for r in regions if r.top + r.height <= 32]
    assert top and all(r.score < 1e-3 for r in top)
    for a in regions:  # max_overlap=0: crops are disjoint
        for b in regions:
            if a is not b:
                assert (a.top + a.height <= b.top or b.top + b.height <= a.top
                        or a.left + a.width <= b.left or b.left + b.width <= a.left)


def test_confusion_map_hand_values():
    logits = torch.tensor([[[0.0, math.log(3.0)]], [[0.0, 0.0]]])  # (K=2, 1, 2)
    assert torch.allclose(confusion_map(logits, (1, 2)), torch.tensor([[1.0, 0.5]]))  # p = (.5,.5), (.75,.25)


def test_comparison_figure(models, dataset):
    regions = find_regions(models["baseline"], dataset, max_regions=2, crop_size=24, width=3)
    assert len(regions) == 2 and {r.index for r in regions} == {0, 1}
    assert regions[0].score >= regions[1].score
    fig = plot_comparison(models["baseline"], models["RAN"], dataset, regions, class_names=NAMES)
    titles = [ax.get_title().split("\n")[0] for ax in fig.axes[:5]]
    assert titles[:4] == ["image", "ground truth", "baseline", "RAN"] and titles[4].startswith("attention")
    assert len([ax for ax in fig.axes if images_of(ax)]) == 5 * 2  # one row per region
    assert crop_accuracy(np.array([1, 2, 2, 0]), np.array([1, 2, 255, 1])) == pytest.approx(2 / 3)


def test_confusion_matrix_iou_bars_and_trimap():
    fig = plot_confusion_matrix(torch.tensor([[8, 2, 0], [1, 3, 0], [0, 0, 0]]), ["a", "b", "c"])
    ax = fig.axes[0]
    shown = ax.images[0].get_array()
    assert np.allclose(shown[:2], [[0.8, 0.2, 0], [0.25, 0.75, 0]]) and np.ma.getmaskarray(shown)[2].all()  # "c": blank
    assert [t.get_text() for t in ax.texts] == ["0.80", "0.20", "0.00", "0.25", "0.75", "0.00"]  # row by row
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    fig = plot_iou_bars({"baseline": [0.5, 0.2, None], "RAN": [0.6, 0.4, 0.2]}, ["a", "b", "c"])
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == pytest.approx([50, 20, 0, 60, 40, 20])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["baseline (mIoU 35.0)", "RAN (mIoU 40.0)"]
    fig = plot_trimap({"baseline": {"8": 0.5, "2": 0.3}, "RAN": {2: 0.4, 8: 0.55}}, {"RAN": 0.7})
    lines = fig.axes[0].get_lines()
    assert list(lines[0].get_xdata()) == [2, 8] and list(lines[0].get_ydata()) == pytest.approx([30, 50])
    assert list(lines[2].get_ydata()) == pytest.approx([70, 70])  # RAN's whole-image mIoU


def test_training_curves(tmp_path):
    (tmp_path / "log.csv").write_text(
        "iteration,epoch,loss,loss_original,loss_reverse,loss_fused,lr,images_per_s,val_miou\n"
        "1,0,3.0,1.0,1.1,0.9,0.01,5.0,\n2,0,2.0,0.7,0.6,0.7,0.005,5.0,0.25\n3,1,1.5,0.5,0.5,0.5,0.001,5.0,\n")
    fig = plot_training_curves(tmp_path)
    loss_ax, lr_ax, eval_ax = fig.axes
    assert [ax.get_title() for ax in fig.axes] == ["losses", "learning rate", "evaluation"]
    assert [ln.get_label() for ln in loss_ax.get_lines()] == ["loss", "loss_original", "loss_reverse",
                                                              "loss_fused"]
    assert list(lr_ax.get_lines()[0].get_ydata()) == [0.01, 0.005, 0.001]
    miou, = eval_ax.get_lines()  # images_per_s and epoch are not curves
    assert list(miou.get_xdata()) == [2] and list(miou.get_ydata()) == [25.0]  # in percent; empty cells skipped
    with pytest.raises(FileNotFoundError, match="log.csv"):
        plot_training_curves(tmp_path / "missing")


def test_training_curves_mark_short_runs(tmp_path):
    """A run of a few logged iterations gets markers on every curve (one point alone draws nothing without one);
    a long run's training curves are plain lines; evaluation points are always marked."""
    def log(iterations: int):
        rows = [f"{i},{1 / i},0.01," for i in range(1, iterations + 1)] + [f"{iterations},,,0.5"]
        (tmp_path / "log.csv").write_text("iteration,loss,lr,val_miou\n" + "\n".join(rows) + "\n")
        fig = plot_training_curves(tmp_path)
        loss, lr, evaluation = (ax.get_lines() for ax in fig.axes)
        return [line.get_marker() for line in (*loss, *lr, *evaluation)], len(loss[0].get_xdata())
    assert log(1) == (["o", "o", "o"], 1)
    ax = plot_training_curves(tmp_path).axes[0]
    low, high = ax.get_xlim()
    assert [t for t in ax.get_xticks() if low <= t <= high] == [1]  # whole iterations, not 0.95 ... 1.05
    assert log(20) == (["o", "o", "o"], 20)
    assert log(21) == (["None", "None", "o"], 21)


def _signature(fig) -> tuple:
    """What a figure shows: its titles and the sums of its images."""
    titles = [ax.get_title() for ax in fig.axes] + [sf.get_suptitle() for sf in fig.subfigs]
    sums = [round(float(np.asarray(im.get_array()).sum()), 4) for ax in fig.axes for im in images_of(ax)]
    return tuple(titles), tuple(sums), len(fig.axes)


def test_explorer_reacts_to_every_control(models, dataset):
    ex = explorer(models, dataset, class_names=NAMES)
    controls = [(ex.image, 1), (ex.class_index, 3), (ex.band_width, 8), (ex.model, "RAN"),
                *((toggle, False) for toggle in ex.branches.values())]
    for control, value in controls:
        before, signature = ex.figure, _signature(ex.figure)
        control.value = value
        assert ex.figure is not before, control.description
        assert _signature(ex.figure) != signature, control.description
    assert "no branch selected" in [t.get_text() for sf in ex.figure.subfigs for t in sf.texts]
    single = explorer(models["RAN"], dataset)
    assert single.model is None and single.model_name == "ran"


def test_explorer_shows_its_figure_as_png(models, dataset):
    ex = explorer(models, dataset, class_names=NAMES)
    png = ex.png()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    ex.band_width.value = 9
    assert ex.png() != png  # a new figure, a new image


@pytest.mark.parametrize(("in_colab", "version", "enabled"), [
    (False, "8.1.5", False),  # JupyterLab, Jupyter, VS Code: their own widget managers
    (True, "7.7.1", False),  # Colab's own ipywidgets: Colab's built-in renderer draws them
    (True, "8.1.5", True),  # ipywidgets 8 in Colab: only the custom widget manager draws them
])
def test_colab_widget_manager_only_where_needed(models, dataset, monkeypatch, in_colab, version, enabled):
    import types

    import ipywidgets

    import ranlib.viz
    from ranlib.viz import widgets

    # With the submodule loaded, the package's names are still the explorer's function and class, not a module.
    assert ranlib.viz.explorer is widgets.explorer and ranlib.viz.Explorer is widgets.Explorer

    calls = []
    monkeypatch.setattr(ipywidgets, "__version__", version)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    if in_colab:
        output = types.ModuleType("google.colab.output")
        output.enable_custom_widget_manager = lambda: calls.append("enabled")
        colab = types.ModuleType("google.colab")
        colab.output = output
        monkeypatch.setitem(sys.modules, "google.colab", colab)
        monkeypatch.setitem(sys.modules, "google.colab.output", output)
    assert widgets.enable_colab_widgets() is enabled
    assert calls == (["enabled"] if enabled else [])
    calls.clear()
    explorer(models, dataset, class_names=NAMES)._ipython_display_()  # showing the explorer does the same
    assert calls == (["enabled"] if enabled else [])


def test_attention_statistics_against_hand_values(dataset):
    """Heads that output one constant per class: every statistic is a hand-worked number."""
    from ranlib.data import mixed_boundary_band
    from ranlib.viz.attention import attention_statistics, plot_attention_statistics

    model = build_model("resnet18", variant="ran", num_classes=K).eval()
    b = torch.tensor([2.0, -1.0, 3.0, 0.5])  # original score per class, the same at every pixel
    c = torch.tensor([1.0, 4.0, -2.0, 0.0])  # CONV_rev output per class: reverse = -c
    with torch.no_grad():
        for head, bias in ((model.conv_org, b), (model.conv_rev, c)):
            head.conv.weight.zero_()
            head.conv.bias.copy_(bias)
    attention = torch.sigmoid(-b)  # (K,)
    items = [dataset[0], dataset[1]]
    items[1] = (items[1][0], items[1][1].clone())
    items[1][1][:4] = 255  # void rows count in neither region
    stats = attention_statistics(model, items)

    for region in ("mixed boundary", "rest"):
        truth = []
        for _, mask in items:
            band = mixed_boundary_band(mask, 4)
            where = (band if region == "mixed boundary" else ~band) & (mask != 255)
            truth.append(mask[where])
        truth = torch.cat(truth)
        got = stats[region]
        assert got["pixels"] == truth.numel()
        assert got["attention_true"] == pytest.approx(attention[truth].mean().item(), rel=1e-5)
        other = (attention.sum() - attention[truth]).mean().item() / (K - 1)
        assert got["attention_other"] == pytest.approx(other, rel=1e-5)
        assert got["open_true"] == pytest.approx((b[truth] < 0).float().mean().item())  # only class 1 opens
        assert got["open_other"] == pytest.approx((truth != 1).float().mean().item() / (K - 1))
        assert got["relative_change"] == pytest.approx((attention * c).abs().sum().item() / b.abs().sum().item(),
                                                       rel=1e-5)
    labelled = sum(int((mask != 255).sum()) for _, mask in items)
    assert sum(stats["histogram"]["true"]) == labelled
    assert sum(stats["histogram"]["other"]) == labelled * (K - 1)
    fig = plot_attention_statistics(stats)
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == [
        "where the original scores fall", "how far the attention opens (band 4 px)"]
    with pytest.raises(ValueError, match="variant='ran'"):
        attention_statistics(build_model("resnet18", variant="baseline", num_classes=K), items)
