"""evaluate() reports Boundary IoU and what RAN's fusion changes, equal to the accumulators fed directly."""

import pytest
import torch


def test_evaluate_reports_boundary_iou_and_what_the_fusion_changes(one_thread):
    """evaluate's boundary_iou and fusion_changes equal the accumulators fed here with the model's own output."""
    from ranlib import build_model
    from ranlib.evaluate import evaluate, format_table
    from ranlib.fusion_changes import FusionChanges
    from ranlib.metrics import BoundaryIoU

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    images, masks = torch.randn(2, 3, 32, 32, generator=g), torch.randint(0, 3, (2, 32, 32), generator=g)
    masks[:, :2] = 255
    batches = [(images[:1], masks[:1]), (images[1:], masks[1:])]
    ran = build_model("resnet18", variant="ran", num_classes=3).eval()
    metrics = evaluate(ran, batches, 3, torch.device("cpu"), band_widths=(4,))
    with torch.no_grad():
        out = ran(images).upsample((32, 32))
    changes, boundary_iou = FusionChanges(4), BoundaryIoU(3)
    changes.update(out.original, out.fused, masks)
    boundary_iou.update(out.fused.argmax(1), masks)
    assert metrics["fusion_changes"] == changes.compute()
    assert metrics["boundary_iou"]["iou"] == pytest.approx(boundary_iou.compute()["iou"], nan_ok=True)
    table = format_table(metrics, ["a", "b", "c"])
    assert "Boundary IoU (mean)" in table and "what the fusion changes" in table
    baseline = build_model("resnet18", variant="baseline", num_classes=3).eval()
    plain = evaluate(baseline, batches, 3, torch.device("cpu"), band_widths=(4,))
    assert "fusion_changes" not in plain and "boundary_iou" in plain
    assert "what the fusion changes" not in format_table(plain, ["a", "b", "c"])
    original_only = evaluate(ran, batches, 3, torch.device("cpu"), band_widths=(4,), branch="original")
    assert "fusion_changes" not in original_only


def test_read_metrics_gives_back_evaluate_s_int_band_widths(tmp_path, one_thread):
    """metrics.json, written as fit writes it, read back: the band widths are the ints evaluate returned, the file
    keeps JSON's string keys (what scripts reading plain JSON index with "4")."""
    import json

    from ranlib.evaluate import named_metrics, read_metrics

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(1, 3, 32, 32, generator=g), torch.randint(0, 3, (1, 32, 32), generator=g))]
    metrics = evaluate_ran(batches)
    (tmp_path / "metrics.json").write_text(json.dumps(named_metrics(metrics, ["a", "b", "c"]), indent=2))
    assert set(json.loads((tmp_path / "metrics.json").read_text())["mixed_miou"]) == {"2", "4"}
    for where in (tmp_path, tmp_path / "metrics.json"):
        back = read_metrics(where)
        for key in ("boundary_miou", "mixed_miou"):
            assert list(back[key]) == [2, 4]
            assert back[key] == pytest.approx(metrics[key], nan_ok=True)
        assert back["per_class_iou"] == pytest.approx(dict(zip("abc", metrics["iou"], strict=True)), nan_ok=True)
    with pytest.raises(FileNotFoundError, match="metrics.json not found"):
        read_metrics(tmp_path / "nowhere")


def evaluate_ran(batches):
    from ranlib import build_model
    from ranlib.evaluate import evaluate

    return evaluate(build_model("resnet18", variant="ran", num_classes=3), batches, 3, torch.device("cpu"),
                    band_widths=(2, 4))
