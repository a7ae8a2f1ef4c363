"""The training configuration: one frozen dataclass, stored as plain data in config.json and every checkpoint.

``TrainConfig`` holds everything a run depends on: the fields of ``ranlib.model_config.ModelConfig``, the data,
the DeepLab optimisation recipe, precision, and bookkeeping. The fields that depend on the dataset (``PRESETS``)
and the run directory default to None, which ``TrainConfig`` fills in when it is made: so
``TrainConfig(dataset="voc")``, ``TrainConfig.for_dataset("voc")`` and ``python -m ranlib train --dataset voc`` are
one configuration. The CLI only fills its fields; ``TrainConfig.from_dict(json.load(...))`` rebuilds it from a
run's ``config.json`` (``ranlib.engine.run_dir`` holds a run to it; ``ranlib.engine.wording`` spells a configuration
as the train command that makes it).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path

from ranlib.model_config import (  # noqa: F401  (ConfigError and AMP_CHOICES are imported from here too)
    AMP_CHOICES,
    ATTENTIONS,
    BACKBONES,
    DEFAULT_DILATION,
    HEADS,
    MODEL_NAMES,
    VARIANTS,
    ConfigError,
    ModelConfig,
    check_choice,
    check_dilation,
)

DATASETS = ("mixed_boundary", "voc")
# The values a field left at None takes, by dataset: the one home of every dataset-dependent default.
PRESETS = {
    # The main job: 64-px crops give an 8x8 feature map, which trains a 1x1 head (head_dilation 0; measured against
    # whole-scene training and smaller dilations in docs/results.md).
    "mixed_boundary": {"data_root": "data/mixed_boundary", "train_split": "train", "crop_size": 64,
                       "batch_size": 8, "eval_batch_size": 8, "head_dilation": 0},
    # DeepLab-LargeFOV on VOC 2012 + SBD: 321-px crops, batch 10, the head's dilation 12; VOC images differ in
    # size, so they are evaluated one at a time.
    "voc": {"data_root": "data/VOCdevkit/VOC2012", "train_split": "train_aug", "crop_size": 321, "batch_size": 10,
            "eval_batch_size": 1, "head_dilation": DEFAULT_DILATION},
}
MAX_CROP_SIZE = 2048  # four times VOC's longest side (500 px): anything larger is a typo, not a crop
# Fields that may change when a run resumes (``ranlib.engine.run_dir.check_run_dir``): they change how it runs,
# not what it computes (amp included, so a run started on one GPU can resume on another with a different native
# precision).
RESUMABLE_CHANGES = ("run_dir", "data_root", "num_workers", "device", "log_every", "eval_every", "checkpoint_every",
                     "keep_checkpoints", "eval_batch_size", "compile", "channels_last", "amp")


def _whole(value, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _device(value) -> bool:
    kind, _, index = str(value).partition(":")
    return kind in ("auto", "cpu", "cuda", "mps") and (not index or (kind == "cuda" and index.isdigit()))


# The names (backbone, head, variant, attention, amp, dataset) and the head dilation are checked by their own
# rules in ranlib.model_config. (field, test, allowed range in words): every other field with a range, checked
# when a TrainConfig is made, after the presets are filled in.
_RULES = (
    ("data_root", lambda v: isinstance(v, str) and v.strip() != "", "a folder path"),
    ("train_split", lambda v: isinstance(v, str) and v.strip() != "", "a split name such as train"),
    ("val_split", lambda v: isinstance(v, str) and v.strip() != "", "a split name such as val"),
    ("crop_size", lambda v: _whole(v, 16) and v <= MAX_CROP_SIZE,
     f"a whole number of pixels from 16 (output stride 8) to {MAX_CROP_SIZE}"),
    ("scale_range", lambda v: len(v) == 2 and all(_number(x) and x > 0 for x in v) and v[0] <= v[1],
     "two numbers 0 < MIN <= MAX"),
    ("batch_size", lambda v: _whole(v, 1), "a whole number >= 1"),
    ("num_workers", lambda v: v is None or _whole(v, 0), "a whole number >= 0"),
    ("iterations", lambda v: _whole(v, 1), "a whole number >= 1"),
    ("lr", lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
    ("head_lr_mult", lambda v: _number(v) and v > 0, "a number > 0"),
    ("momentum", lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    ("weight_decay", lambda v: _number(v) and v >= 0, "a number >= 0"),
    ("poly_power", lambda v: _number(v) and v >= 0, "a number >= 0"),
    ("grad_accum", lambda v: _whole(v, 1), "a whole number >= 1"),
    ("loss_weights", lambda v: len(v) == 3 and all(_number(x) and x >= 0 for x in v) and any(v),
     "three numbers >= 0, not all 0"),
    ("device", _device, "auto, cpu, cuda, cuda:N or mps"),
    ("seed", lambda v: _whole(v, 0), "a whole number >= 0"),
    ("run_dir", lambda v: isinstance(v, str) and v.strip() != "", "a folder path"),
    ("checkpoint_every", lambda v: _whole(v, 1), "a whole number of iterations >= 1"),
    ("keep_checkpoints", lambda v: _whole(v, 1), "a whole number >= 1"),
    ("eval_every", lambda v: _whole(v, 0), "a whole number of iterations >= 0 (0: only at the end)"),
    ("log_every", lambda v: _whole(v, 1), "a whole number of iterations >= 1"),
    ("eval_batch_size", lambda v: _whole(v, 1), "a whole number >= 1"),
)


@dataclass(frozen=True)
class TrainConfig:
    # model: the fields of ranlib.model_config.ModelConfig, with its defaults except where the main job differs
    backbone: str = "resnet18"  # the main job's; the paper's ResNet-101 is ModelConfig's default
    head: str = ModelConfig.head
    variant: str = ModelConfig.variant  # ran | subtract | baseline: the ablation under one seed
    attention: str = ModelConfig.attention
    head_dilation: int | None = None  # None: the dataset's (PRESETS): 0, a 1x1 head, on the embedded data; 12 on VOC
    weights_backbone: str | None = ModelConfig.weights_backbone  # e.g. "IMAGENET1K_V1" for VOC
    # data
    dataset: str = "mixed_boundary"  # mixed_boundary (generated on first use) | voc (any VOC-layout root)
    data_root: str | None = None  # None: the dataset's (PRESETS): data/mixed_boundary | data/VOCdevkit/VOC2012
    train_split: str | None = None  # None: the dataset's: train | train_aug (VOC + SBD)
    val_split: str = "val"
    crop_size: int | None = None  # None: the dataset's: 64 | 321
    scale_range: tuple[float, float] = (0.5, 2.0)
    batch_size: int | None = None  # global: split across processes; None: the dataset's: 8 | 10 (DeepLab)
    num_workers: int | None = None  # None: from os.cpu_count()
    # optimisation (DeepLab: lr 2.5e-4 for ImageNet-initialised VGG/ResNet on VOC)
    iterations: int = 1000  # the main job: about 3 minutes on 2 CPU cores
    lr: float = 0.001  # from scratch on the embedded data; the heads train at 10x
    head_lr_mult: float = 10.0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    grad_accum: int = 1  # micro-batches per iteration
    freeze_bn: bool = False  # BN in eval mode with fixed affine parameters (DeepLab, small batches)
    sync_bn: bool = False  # SyncBatchNorm under DDP
    loss_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)  # original, reverse, fused
    # precision and speed
    amp: str = "auto"  # auto (bf16 from compute capability 8.0, fp16 below, off on CPU) | off | bf16 | fp16
    channels_last: bool = False
    compile: bool = False
    device: str = "auto"  # auto: cuda if available, else cpu
    deterministic: bool = False  # deterministic kernels (bit-identical resume on CPU)
    # bookkeeping
    seed: int = 0
    run_dir: str | None = None  # None: runs/<dataset>-<backbone>-<variant>-seed<seed>
    checkpoint_every: int = 100
    keep_checkpoints: int = 2  # the newest and its fallback; a finished run keeps final.pt instead
    eval_every: int = 250  # 0: only at the end
    log_every: int = 10
    eval_batch_size: int | None = None  # None: the dataset's: 8 | 1 (VOC images differ in size)

    def __post_init__(self):
        check_choice("dataset", self.dataset, DATASETS)
        for name, value in PRESETS[self.dataset].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.run_dir is None:
            object.__setattr__(self, "run_dir", default_run_dir(self))
        for name, choices in (*MODEL_NAMES, ("amp", AMP_CHOICES)):
            check_choice(name, getattr(self, name), choices)
        check_dilation(self.head_dilation)
        for name, test, allowed in _RULES:
            if not test(getattr(self, name)):
                raise ConfigError(name, getattr(self, name), allowed)
        if self.batch_size % self.grad_accum:
            raise ConfigError("batch_size", self.batch_size, f"a multiple of grad_accum ({self.grad_accum})")
        embedded = [name for name, value in PRESETS["mixed_boundary"].items()
                    if getattr(self, name) == value != PRESETS[self.dataset][name]]
        if "data_root" in embedded:  # e.g. dataclasses.replace(TrainConfig(), dataset="voc")
            warnings.warn(f"this {self.dataset} configuration keeps the embedded dataset's {', '.join(embedded)}; "
                          f"build it with TrainConfig.for_dataset({self.dataset!r}, ...) for {self.dataset}'s",
                          stacklevel=3)

    @classmethod
    def for_dataset(cls, dataset: str, **overrides) -> TrainConfig:
        """The configuration of ``dataset`` with its preset defaults (``PRESETS``), then ``overrides``:
        ``fit(TrainConfig.for_dataset("voc", data_root=...))`` trains what ``python -m ranlib train --dataset voc``
        trains. (``dataclasses.replace`` of another dataset's configuration keeps that one's values.)"""
        return cls(dataset=dataset, **overrides)

    @cached_property
    def model_config(self):
        """The ``ModelConfig`` of this run. Its number of classes comes from the dataset's class names
        (``dataset_class_names``): nothing is generated or downloaded, and it is worked out once per config."""
        num_classes = len(dataset_class_names(self))
        return ModelConfig(self.backbone, self.head, self.variant, self.attention, num_classes,
                           self.weights_backbone, self.head_dilation)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Rebuild from ``asdict`` output (JSON turns tuples into lists; unknown keys are refused)."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def default_run_dir(config: TrainConfig) -> str:
    """Where a run goes when no run directory is given: one folder per dataset, backbone, variant and seed."""
    return f"runs/{config.dataset}-{config.backbone}-{config.variant}-seed{config.seed}"


def dataset_class_names(config: TrainConfig) -> list[str]:
    """The class names of the run's dataset, without touching the disk beyond reading: the embedded dataset's
    fixed classes, or a VOC-layout root's ``classes.txt`` (else VOC's 21)."""
    from ranlib.data import class_names
    from ranlib.data.mixed_boundary import CLASSES

    return list(CLASSES) if config.dataset == "mixed_boundary" else class_names(config.data_root)


def dataset_root(config: TrainConfig) -> Path:
    """The VOC-layout folder to read; the embedded dataset is generated there on first use."""
    if config.dataset == "mixed_boundary":
        from ranlib.data import ensure_mixed_boundary_dataset

        return ensure_mixed_boundary_dataset(config.data_root)
    if config.dataset == "voc":
        return Path(config.data_root)
    raise ValueError(f"unknown dataset {config.dataset!r}; choose mixed_boundary or voc")
