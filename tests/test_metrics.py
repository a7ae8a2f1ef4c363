"""ConfusionMatrix: hand-made matrices, torchmetrics, band masks, and the reduce that is a no-op without DDP;
BandConfusion against matrices masked by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torchmetrics

from ranlib.data.bands import boundary_band, mixed_boundary_band
from ranlib.metrics import BandConfusion, ConfusionMatrix


def test_confusion_matrix_on_a_hand_made_example():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 1]])
    prediction = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 1]])
    cm = ConfusionMatrix(3)
    cm.update(prediction, target)
    # rows = truth, columns = prediction: class 0: 1 right, 1 as class 1; class 1: 3 right; class 2: 1 right, 1 as 0
    assert cm.matrix.tolist() == [[1, 1, 0], [0, 3, 0], [1, 0, 1]]
    m = cm.compute()
    assert m["pixel_acc"] == pytest.approx(5 / 7)
    assert m["mean_class_acc"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert m["iou"] == pytest.approx([1 / 3, 3 / 4, 1 / 2])
    assert m["miou"] == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert m["fwiou"] == pytest.approx(2 / 7 * 1 / 3 + 3 / 7 * 3 / 4 + 2 / 7 * 1 / 2)
    banded = ConfusionMatrix(3)
    banded.update(prediction, target, mask=torch.tensor([[True, True, False, False], [False] * 4]))
    assert banded.matrix.tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 0]]
    assert banded.compute()["iou"][2] != banded.compute()["iou"][2]  # nan: class 2 absent from both


def test_confusion_matrix_agrees_with_torchmetrics():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (4, 20, 20), generator=g)
    target[:, :3] = 255
    prediction = torch.where(torch.rand(4, 20, 20, generator=g) < 0.6, target.clamp(max=4),
                             torch.randint(0, 5, (4, 20, 20), generator=g))
    cm = ConfusionMatrix(5)
    cm.update(prediction[:2], target[:2])
    cm.update(prediction[2:], target[2:])
    m = cm.compute()
    kwargs = {"num_classes": 5, "ignore_index": 255}
    iou = torchmetrics.classification.MulticlassJaccardIndex(average="none", **kwargs)(prediction, target)
    assert m["iou"] == pytest.approx(iou.tolist(), abs=1e-6)
    assert m["miou"] == pytest.approx(iou.mean().item(), abs=1e-6)
    acc = torchmetrics.classification.MulticlassAccuracy(average="micro", **kwargs)(prediction, target)
    assert m["pixel_acc"] == pytest.approx(acc.item(), abs=1e-6)
    class_acc = torchmetrics.classification.MulticlassAccuracy(average="macro", **kwargs)(prediction, target)
    assert m["mean_class_acc"] == pytest.approx(class_acc.item(), abs=1e-6)


def test_absent_classes_are_left_out_of_the_means():
    # Class 2 never occurs, class 3 is only predicted: IoU nan for 2, 0 for 3; mean class accuracy over 0 and 1.
    cm = ConfusionMatrix(4)
    cm.update(torch.tensor([0, 0, 1, 3]), torch.tensor([0, 0, 1, 1]))
    m = cm.compute()
    assert math.isnan(m["iou"][2])
    assert m["iou"][0] == 1 and m["iou"][1] == pytest.approx(1 / 2) and m["iou"][3] == 0
    assert m["miou"] == pytest.approx((1 + 1 / 2 + 0) / 3)
    assert m["mean_class_acc"] == pytest.approx((1 + 1 / 2) / 2)
    assert m["fwiou"] == pytest.approx(2 / 4 * 1 + 2 / 4 * 1 / 2)


def test_band_confusion_counts_each_band_as_a_masked_confusion_matrix():
    """Two batches of random labels with a void row: every matrix equals a ConfusionMatrix fed the band masks
    drawn here, the interior (overall minus the boundary band) equals one fed ~boundary_band, and update hands
    back the bands it drew."""
    g = torch.Generator().manual_seed(0)
    blocks = torch.randint(0, 4, (2, 2, 6, 6), generator=g).repeat_interleave(4, -1).repeat_interleave(4, -2)
    predictions = torch.randint(0, 4, (2, 2, 24, 24), generator=g)
    blocks[:, :, 0] = 255
    counts = BandConfusion(4, (1, 3))
    by_hand = {key: ConfusionMatrix(4) for key in ("all", "b1", "m1", "i1", "b3", "m3", "i3")}
    for prediction, target in zip(predictions, blocks, strict=True):
        bands = counts.update(prediction, target)
        by_hand["all"].update(prediction, target)
        for w in (1, 3):
            near = boundary_band(target, w)
            assert torch.equal(bands[w][0], near) and torch.equal(bands[w][1], mixed_boundary_band(target, w))
            by_hand[f"b{w}"].update(prediction, target, near)
            by_hand[f"m{w}"].update(prediction, target, mixed_boundary_band(target, w))
            by_hand[f"i{w}"].update(prediction, target, ~near)
    counts.reduce_from_all_processes()  # no DDP: a no-op
    assert torch.equal(counts.overall.matrix, by_hand["all"].matrix)
    for w in (1, 3):
        assert torch.equal(counts.boundary[w].matrix, by_hand[f"b{w}"].matrix)
        assert torch.equal(counts.mixed[w].matrix, by_hand[f"m{w}"].matrix)
        assert torch.equal(counts.interior(w).matrix, by_hand[f"i{w}"].matrix)
        assert 0 < counts.mixed[w].matrix.sum() < counts.boundary[w].matrix.sum() < counts.overall.matrix.sum()
    assert counts.interior(1).matrix.sum() > counts.interior(3).matrix.sum() > 0


def test_reduce_without_distributed_changes_nothing():
    cm = ConfusionMatrix(2)
    cm.update(torch.tensor([[0, 1], [1, 1]]), torch.tensor([[0, 1], [0, 255]]))
    before = cm.matrix.clone()
    cm.reduce_from_all_processes()
    assert torch.equal(cm.matrix, before) and before.tolist() == [[1, 1], [0, 1]]


@pytest.mark.parametrize("branch", ["fused", "original", "reverse"])
def test_evaluate_scores_the_chosen_branch(branch):
    """evaluate(branch=...) against torchmetrics on the argmax of that branch, computed here from the output."""
    from ranlib import build_model
    from ranlib.evaluate import evaluate

    torch.manual_seed(0)
    model = build_model("resnet18", variant="ran", num_classes=3).eval()
    with torch.no_grad():  # make the three branches disagree clearly
        model.conv_org.conv.bias.copy_(torch.tensor([1.0, -1.0, 0.5]))
        model.conv_rev.conv.bias.copy_(torch.tensor([2.0, -6.0, -6.5]))  # argmax: original 0, fused 1, reverse 2
    g = torch.Generator().manual_seed(1)
    images, masks = torch.randn(2, 3, 32, 32, generator=g), torch.randint(0, 3, (2, 32, 32), generator=g)
    masks[:, :2] = 255
    metrics = evaluate(model, [(images, masks)], 3, torch.device("cpu"), band_widths=(4,), branch=branch)
    with torch.no_grad():
        prediction = getattr(model(images).upsample((32, 32)), branch).argmax(1)
    iou = torchmetrics.classification.MulticlassJaccardIndex(3, average="none", ignore_index=255)(prediction, masks)
    assert metrics["iou"] == pytest.approx(iou.tolist(), abs=1e-6)


def test_evaluate_refuses_a_branch_the_model_lacks():
    from ranlib import build_model
    from ranlib.evaluate import evaluate

    baseline = build_model("resnet18", variant="baseline", num_classes=3).eval()
    batch = [(torch.randn(1, 3, 32, 32), torch.zeros(1, 32, 32, dtype=torch.long))]
    with pytest.raises(ValueError, match="no reverse branch"):
        evaluate(baseline, batch, 3, torch.device("cpu"), branch="reverse")
    with pytest.raises(ValueError, match="unknown branch 'rev'"):
        evaluate(baseline, batch, 3, torch.device("cpu"), branch="rev")


def _reduce_in_two_processes(rank: int, init_file: str, out_file: str) -> None:
    """One of two gloo processes: count its own half of the batches, reduce, and (rank 0) save the counts."""
    import torch.distributed as dist

    from ranlib.fusion_changes import FusionChanges
    from ranlib.metrics import BoundaryIoU

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    counters = _counters(ConfusionMatrix, BoundaryIoU, FusionChanges, [rank])
    for counter in counters:
        counter.reduce_from_all_processes()
    if rank == 0:
        torch.save([c.compute() for c in counters], out_file)
    dist.destroy_process_group()


def _counters(confusion, boundary_iou, fusion_changes, ranks: list[int]):
    """A ConfusionMatrix, a BoundaryIoU and a FusionChanges fed the batches of the given ranks."""
    counters = confusion(3), boundary_iou(3), fusion_changes(2)
    for rank in ranks:
        g = torch.Generator().manual_seed(rank)
        masks = torch.randint(0, 3, (2, 16, 16), generator=g)
        original, fused = torch.randn(2, 3, 16, 16, generator=g), torch.randn(2, 3, 16, 16, generator=g)
        counters[0].update(fused.argmax(1), masks)
        counters[1].update(fused.argmax(1), masks)
        counters[2].update(original, fused, masks)
    return counters


def test_reduce_sums_every_metric_over_two_processes(tmp_path, one_thread):
    """Under DDP (two gloo processes, one half of the data each) every metric's reduce gives what one process
    computes from all the data: the one all_reduce_sum in ranlib.distributed, called by all three."""
    import torch.multiprocessing as mp

    from ranlib.fusion_changes import FusionChanges
    from ranlib.metrics import BoundaryIoU

    out = tmp_path / "reduced.pt"
    mp.spawn(_reduce_in_two_processes, args=(str(tmp_path / "init"), str(out)), nprocs=2)
    reduced = torch.load(out)
    whole = [c.compute() for c in _counters(ConfusionMatrix, BoundaryIoU, FusionChanges, [0, 1])]
    alone = [c.compute() for c in _counters(ConfusionMatrix, BoundaryIoU, FusionChanges, [0])]
    assert reduced[0]["iou"] == pytest.approx(whole[0]["iou"], nan_ok=True)
    assert reduced[0]["iou"] != pytest.approx(alone[0]["iou"], nan_ok=True)  # rank 0 alone differs
    assert reduced[1]["iou"] == pytest.approx(whole[1]["iou"], nan_ok=True)
    assert reduced[2] == whole[2] != alone[2]
