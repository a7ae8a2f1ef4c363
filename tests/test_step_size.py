"""The step size each loss term gives the backbone (ranlib.step_size), against a case worked by hand, and its
columns in log.csv; the embedded dataset's test split; the --loss-weights flag; VOC's tuning cut of train_aug."""

from __future__ import annotations

import csv

import pytest
import torch
from torch import nn

from ranlib import RANLoss
from ranlib.data import make_mixed_boundary_dataset
from ranlib.data.sbd import split_for_tuning
from ranlib.engine.train import StepSetup, TrainConfig, fit, train_step
from ranlib.model import RAN
from ranlib.model_config import ModelConfig
from ranlib.step_size import backbone_gradient_norms, feature_gradient_norms, update_norm

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


class ZeroFeatures(nn.Module):
    """A 1x1 convolution with zero weights: f = 0 for any image, with a gradient path to its weight."""

    out_channels, output_stride = 1, 8

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1, bias=False)
        nn.init.zeros_(self.conv.weight)

    def forward(self, x):
        return self.conv(x)


def head(weights):
    conv = nn.Conv2d(1, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(weights, dtype=torch.float32).view(2, 1, 1, 1))
    return conv


def hand_model(variant="ran"):
    conv_rev = head([2.0, 0.0]) if variant != "baseline" else None
    return RAN(ZeroFeatures(), head([1.0, -1.0]), conv_rev, "sigmoid" if variant == "ran" else None)


def test_gradient_norms_match_the_hand_computation():
    # f = 0 on a 1x1 image labelled 0, K = 2. Every branch's logits are 0, so softmax - onehot = (-0.5, 0.5) =: e.
    #   original = W_org f, W_org = (1, -1):              dL/df = W_org . e = -0.5 - 0.5 = -1     -> norm 1
    #   reverse = -W_rev f, W_rev = (2, 0):               dL/df = -W_rev . e = +1                  -> norm 1
    #   fused = original + A * reverse, A = sigmoid(-original) = 0.5 and reverse = 0 at f = 0, so
    #   d fused / df = W_org - 0.5 W_rev = (0, -1):       dL/df = (0, -1) . e = -0.5               -> norm 0.5
    #   total = -1 + 1 - 0.5 = -0.5                                                                 -> norm 0.5
    images, masks = torch.zeros(1, 3, 1, 1), torch.zeros(1, 1, 1, dtype=torch.long)
    norms = backbone_gradient_norms(hand_model(), images, masks)
    assert norms == pytest.approx({"original": 1.0, "reverse": 1.0, "fused": 0.5, "total": 0.5}, abs=1e-6)
    # weighted terms: the original term at 2 sends twice the gradient; the total is -2 + 1 - 0.5
    weighted = backbone_gradient_norms(hand_model(), images, masks, RANLoss((2.0, 1.0, 1.0)))
    assert weighted == pytest.approx({"original": 2.0, "reverse": 1.0, "fused": 0.5, "total": 1.5}, abs=1e-6)
    # subtract: d fused / df = W_org - W_rev = (-1, -1): dL/df = 0.5 - 0.5 = 0; total = -1 + 1 + 0 = 0
    assert backbone_gradient_norms(hand_model("subtract"), images, masks) == pytest.approx(
        {"original": 1.0, "reverse": 1.0, "fused": 0.0, "total": 0.0}, abs=1e-6)
    # baseline: one term, fused = original
    assert backbone_gradient_norms(hand_model("baseline"), images, masks) == pytest.approx(
        {"fused": 1.0, "total": 1.0}, abs=1e-6)


def test_feature_gradient_norms_agree_with_autograd_backward_and_keep_the_graph():
    torch.manual_seed(0)
    features = torch.randn(2, 4, 3, 5, requires_grad=True)
    parts = {"a": (features ** 2).sum(), "b": features.sin().sum()}
    norms = feature_gradient_norms(parts, {"a": 0.5}, features)
    (0.5 * parts["a"] + parts["b"]).backward()  # the graph is still there
    assert norms["total"] == pytest.approx(features.grad.norm().item(), rel=1e-6)
    assert norms["a"] == pytest.approx((0.5 * 2 * features).norm().item(), rel=1e-6)
    assert norms["b"] == pytest.approx(features.detach().cos().norm().item(), rel=1e-6)


def test_update_norm_is_the_norm_of_the_parameter_change():
    before = [torch.zeros(3), torch.ones(2, 2)]
    after = [torch.tensor([3.0, 0.0, 0.0]), torch.ones(2, 2) + torch.tensor([[4.0, 0.0], [0.0, 0.0]])]
    assert update_norm(before, after) == pytest.approx(5.0)


def test_the_probe_measures_without_changing_the_step():
    torch.manual_seed(0)
    images, masks = torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
    results = []
    for probe in (False, True):
        torch.manual_seed(1)
        model = RAN.from_config(ModelConfig("resnet18", num_classes=3, head_dilation=0))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        before = [p.detach().clone() for p in model.backbone_parameters()]
        expected = backbone_gradient_norms(model, images, masks) if probe else None
        setup = StepSetup(model, RANLoss(), optimizer, torch.amp.GradScaler("cpu", enabled=False), torch.device("cpu"))
        step = train_step(setup, iter([(images, masks)]), probe=model if probe else None)
        results.append([p.detach().clone() for p in model.parameters()])
        if probe:
            # plain SGD, lr 0.1: the update is 0.1 x the gradient of the summed loss
            grads = [p.grad for p in model.backbone_parameters()]
            assert step.step_size["backbone_update"] == pytest.approx(
                0.1 * torch.stack([g.pow(2).sum() for g in grads]).sum().sqrt().item(), rel=1e-4)
            assert step.step_size["backbone_update"] == pytest.approx(
                update_norm(before, model.backbone_parameters()), rel=1e-6)
            for name in ("original", "reverse", "fused", "total"):
                assert step.step_size[f"grad_f_{name}"] == pytest.approx(expected[name], rel=1e-4)
        else:
            assert step.step_size == {}
    assert all(torch.equal(a, b) for a, b in zip(*results, strict=True))


@pytest.mark.parametrize("variant, columns", [("ran", ("original", "reverse", "fused", "total")),
                                              ("subtract", ("original", "reverse", "fused", "total")),
                                              ("baseline", ("fused", "total"))])
@pytest.mark.usefixtures("no_run_plots")
def test_log_csv_holds_the_step_size_of_every_log_step(tmp_path, variant, columns):
    root = make_mixed_boundary_dataset(tmp_path / "data", n_train=4, n_val=2, n_test=2, size=32, seed=3,
                                       progress=False)
    config = TrainConfig(variant=variant, dataset="voc", data_root=str(root), run_dir=str(tmp_path / "run"),
                         train_split="train", head_dilation=0, backbone="tiny",
                         crop_size=32, batch_size=2, iterations=4, checkpoint_every=4, eval_every=0, log_every=2,
                         num_workers=0, device="cpu", eval_batch_size=2)
    fit(config)
    with open(tmp_path / "run" / "log.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["loss"]]
    assert [int(r["iteration"]) for r in rows] == [2, 4]
    for row in rows:
        assert all(float(row[f"grad_f_{name}"]) > 0 for name in columns)
        assert float(row["backbone_update"]) > 0
        assert all(row[f"grad_f_{name}"] == "" for name in {"original", "reverse"} - set(columns))


def test_the_test_split_is_deterministic_and_disjoint(tmp_path):
    kwargs = dict(n_train=5, n_val=3, n_test=4, size=32, seed=2, progress=False)
    roots = [make_mixed_boundary_dataset(tmp_path / name, **kwargs) for name in ("a", "b")]
    splits = [{s: (r / "ImageSets" / "Segmentation" / f"{s}.txt").read_text().split() for s in ("train", "val", "test")}
              for r in roots]
    assert splits[0] == splits[1]
    train, val, test = (set(splits[0][s]) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (5, 3, 4) and not (train & test or val & test or train & val)
    for name in splits[0]["test"]:  # the same pixels from the same seed
        assert (roots[0] / "JPEGImages" / f"{name}.jpg").read_bytes() == (roots[1] / "JPEGImages" /
                                                                         f"{name}.jpg").read_bytes()
    # adding the test split leaves train and val as they were
    without = make_mixed_boundary_dataset(tmp_path / "c", **(kwargs | {"n_test": 0}))
    for name in splits[0]["val"]:
        assert (without / "JPEGImages" / f"{name}.jpg").read_bytes() == (roots[0] / "JPEGImages" /
                                                                       f"{name}.jpg").read_bytes()


def test_loss_weights_flag_reaches_the_config(tmp_path):
    from ranlib.cli import build_parser, config_from_args

    args = build_parser().parse_args(["train", "--loss-weights", "0.5", "0", "2", "--run-dir", str(tmp_path)])
    assert config_from_args(args).loss_weights == (0.5, 0.0, 2.0)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--loss-weights", "1", "1"])


def test_tuning_cut_of_train_aug_is_a_seeded_partition():
    ids = [f"{i:04d}" for i in range(50)]
    fit_ids, held = split_for_tuning(ids, holdout=10)
    assert len(held) == 10 and sorted(fit_ids + held) == ids and not set(fit_ids) & set(held)
    assert split_for_tuning(ids, holdout=10) == (fit_ids, held)
    assert split_for_tuning(ids, holdout=10, seed=1)[1] != held


def test_loss_weights_scale_the_terms_in_the_loss():
    output = hand_model()(torch.zeros(1, 3, 1, 1))
    target = torch.zeros(1, 1, 1, dtype=torch.long)
    total, parts = RANLoss((1 / 3, 1 / 3, 1 / 3))(output, target)
    assert total.item() == pytest.approx(sum(parts.values()).item() / 3)
