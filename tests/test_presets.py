"""One home for every default: the dataset presets and the run directory live in ``TrainConfig``, so Python, the
CLI and the course build the same configuration; each name list is checked by one rule."""

from __future__ import annotations

import json
import sys
import tarfile
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from ranlib.engine.config import PRESETS, ConfigError, TrainConfig
from ranlib.model_config import AMP_CHOICES, ATTENTIONS, BACKBONES, HEADS, VARIANTS, ModelConfig

sys.path.insert(0, str(Path(__file__).parent))
from fakes_voc import voc_and_sbd_archives  # noqa: E402


def test_voc_gets_its_preset_from_python_as_from_the_cli():
    from ranlib.cli import build_parser, config_from_args

    from_python = TrainConfig.for_dataset("voc")
    assert TrainConfig(dataset="voc") == from_python
    # The values written out by hand, not read from PRESETS: DeepLab-LargeFOV's recipe on VOC + SBD.
    assert (from_python.data_root, from_python.train_split, from_python.crop_size, from_python.batch_size,
            from_python.eval_batch_size, from_python.head_dilation) == \
        ("data/VOCdevkit/VOC2012", "train_aug", 321, 10, 1, 12)
    assert from_python.model_config.head_dilation == 12
    from_cli = config_from_args(build_parser().parse_args(["train", "--dataset", "voc"]))
    assert from_cli == replace(from_python, data_root=str(Path("data/VOCdevkit/VOC2012").resolve()))
    embedded = TrainConfig()
    assert (embedded.data_root, embedded.train_split, embedded.crop_size, embedded.batch_size,
            embedded.eval_batch_size, embedded.head_dilation) == ("data/mixed_boundary", "train", 64, 8, 8, 0)


def test_overrides_win_over_the_preset():
    config = TrainConfig.for_dataset("voc", crop_size=129, head_dilation=0, train_split="train")
    assert (config.crop_size, config.head_dilation, config.train_split, config.batch_size) == (129, 0, "train", 10)


def test_a_voc_config_that_kept_the_embedded_values_warns_naming_them():
    with pytest.warns(UserWarning, match=r"keeps the embedded dataset's data_root, train_split, crop_size, "
                                         r"batch_size, eval_batch_size, head_dilation; build it with "
                                         r"TrainConfig.for_dataset\('voc'"):
        replace(TrainConfig(), dataset="voc")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TrainConfig.for_dataset("voc", crop_size=64)  # chosen on purpose, with VOC's own data root: no warning
        TrainConfig()


def test_default_run_directory_names_dataset_backbone_variant_and_seed():
    dirs = {TrainConfig(variant=v, seed=s).run_dir for v in VARIANTS for s in (0, 1)}
    assert len(dirs) == 2 * len(VARIANTS)
    assert TrainConfig(variant="subtract", seed=2).run_dir == "runs/mixed_boundary-resnet18-subtract-seed2"
    assert TrainConfig.for_dataset("voc", backbone="resnet101").run_dir == "runs/voc-resnet101-ran-seed0"
    assert TrainConfig(run_dir="elsewhere").run_dir == "elsewhere"
    # config.json round trip: the stored, filled-in values come back unchanged
    config = TrainConfig.for_dataset("voc", variant="baseline")
    assert TrainConfig.from_dict(json.loads(json.dumps(asdict(config)))) == config


@pytest.mark.parametrize("field, value, names", [
    ("backbone", "resnet34", BACKBONES), ("head", "psp", HEADS), ("variant", "reverse", VARIANTS),
    ("attention", "softmax", ATTENTIONS), ("amp", "fp8", AMP_CHOICES)])
def test_each_name_list_has_one_rule_and_one_message(field, value, names):
    """TrainConfig, ModelConfig and the builders refuse a bad name with the same ConfigError."""
    from ranlib.backbone import build_backbone
    from ranlib.heads import build_head
    from ranlib.precision import resolve_amp
    from ranlib.reverse_attention import reverse_attention

    expected = f"{field} = {value!r} is not allowed; {field} must be one of {', '.join(names)}"
    calls = [lambda: TrainConfig(**{field: value})]
    if field != "amp":
        calls.append(lambda: ModelConfig(**{field: value}))
    calls += {"backbone": [lambda: build_backbone(value)],
              "head": [lambda: build_head(value, 8, 3)],
              "attention": [lambda: reverse_attention(torch.zeros(1, 3, 2, 2), value)],
              "amp": [lambda: resolve_amp(value, "cpu")],
              "variant": []}[field]
    for call in calls:
        with pytest.raises(ConfigError) as err:
            call()
        assert str(err.value) == expected


def test_crop_size_has_an_upper_bound():
    with pytest.raises(ConfigError, match="crop_size = 100000 is not allowed"):
        TrainConfig(crop_size=100_000)
    TrainConfig(crop_size=2048)


def test_crop_size_upper_bound_exits_2_before_any_work(tmp_path, capsys):
    from ranlib.__main__ import main

    assert main(["train", "--crop-size", "100000", "--run-dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip() == ("python -m ranlib train: error: argument --crop-size: 100000 is not "
                                              "allowed; it must be a whole number of pixels from 16 (output "
                                              "stride 8) to 2048")
    assert not (tmp_path / "run").exists()


def test_fit_from_python_trains_what_the_cli_trains_on_voc(tmp_path, one_thread):
    """``fit(TrainConfig.for_dataset("voc", ...))`` and ``train --dataset voc`` on a VOC + SBD layout: the same
    configuration (apart from the run directory) and the same model, weight for weight (same seed, CPU)."""
    from ranlib.__main__ import main
    from ranlib.engine.checkpoint import load_checkpoint
    from ranlib.engine.train import fit

    data = tmp_path / "data"
    for archive in voc_and_sbd_archives(tmp_path / "archives").values():
        with tarfile.open(archive) as tar:
            tar.extractall(data, filter="data")
    root = data / "VOCdevkit" / "VOC2012"
    small = {"batch_size": 2, "crop_size": 97, "iterations": 1, "eval_every": 0, "num_workers": 0,
             "deterministic": True, "backbone": "tiny"}
    fit(TrainConfig.for_dataset("voc", data_root=str(root), run_dir=str(tmp_path / "python"), **small))
    flags = ["--batch-size", "2", "--crop-size", "97", "--iterations", "1", "--eval-every", "0", "--workers", "0",
             "--deterministic", "--backbone", "tiny"]
    assert main(["train", "--dataset", "voc", "--data-root", str(root), "--run-dir", str(tmp_path / "cli"),
                 *flags]) == 0
    python_model, python_config, _ = load_checkpoint(tmp_path / "python" / "final.pt")
    cli_model, cli_config, _ = load_checkpoint(tmp_path / "cli" / "final.pt")
    assert replace(python_config, run_dir="-") == replace(cli_config, run_dir="-")
    assert python_config.train_split == "train_aug" and python_config.head_dilation == 12
    assert python_model.config == cli_model.config
    assert python_model.conv_org.conv.dilation == (12, 12)
    python_state, cli_state = python_model.state_dict(), cli_model.state_dict()
    assert python_state.keys() == cli_state.keys()
    assert all(torch.equal(python_state[k], cli_state[k]) for k in python_state)


def test_presets_cover_the_same_fields_for_every_dataset():
    assert PRESETS["voc"].keys() == PRESETS["mixed_boundary"].keys()
    assert all(getattr(TrainConfig, name) is None for name in PRESETS["voc"])  # None: "the dataset's"
