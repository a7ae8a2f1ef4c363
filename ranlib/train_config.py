"""The training configuration: one frozen dataclass, stored as plain data in config.json and every checkpoint.

``TrainConfig`` holds everything a run depends on: the model fields of ``ranlib.model.ModelConfig``, the data,
the DeepLab optimisation recipe, precision, and bookkeeping. The CLI (``python -m ranlib train``) only fills
its fields; ``TrainConfig.from_dict(json.load(...))`` rebuilds it from a run's ``config.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

# The choices, as plain tuples so that the command line (and its --help) needs no torch; tests/test_cli.py checks
# that they match ranlib.model's.
BACKBONES = ("resnet18", "resnet50", "resnet101", "vgg16")
HEADS = ("largefov", "aspp")
VARIANTS = ("ran", "subtract", "baseline")
ATTENTIONS = ("sigmoid", "normalized")
DATASETS = ("mixed_boundary", "voc")
AMP_CHOICES = ("auto", "off", "bf16", "fp16")  # as ranlib.precision.AMP_CHOICES


@dataclass(frozen=True)
class TrainConfig:
    # model (see ranlib.model.ModelConfig)
    backbone: str = "resnet18"
    head: str = "largefov"
    variant: str = "ran"  # ran | subtract | baseline: the ablation under one seed
    attention: str = "sigmoid"
    head_dilation: int | None = None  # None: the head's own (DeepLab's 12 for LargeFOV)
    weights_backbone: str | None = None  # e.g. "IMAGENET1K_V1" for VOC
    # data
    dataset: str = "mixed_boundary"  # mixed_boundary (generated on first use) | voc (any VOC-layout root)
    data_root: str = "data/mixed_boundary"  # for VOC: data/VOCdevkit/VOC2012
    train_split: str = "train"  # VOC: train_aug
    val_split: str = "val"
    crop_size: int = 64  # VOC: 321
    scale_range: tuple[float, float] = (0.5, 2.0)
    batch_size: int = 8  # global: split across processes; VOC: 10 (DeepLab)
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
    run_dir: str = "runs/mixed_boundary-resnet18-ran"
    checkpoint_every: int = 100
    keep_checkpoints: int = 2  # the newest and its fallback; a finished run keeps final.pt instead
    eval_every: int = 250  # 0: only at the end
    log_every: int = 10
    eval_batch_size: int = 8  # VOC images differ in size: 1

    @property
    def model_config(self):
        """The ``ranlib.model.ModelConfig`` of this run (its number of classes read from the dataset)."""
        from ranlib.model import ModelConfig

        num_classes = len(dataset_class_names(self))
        extra = {} if self.head_dilation is None else {"head_dilation": self.head_dilation}
        return ModelConfig(self.backbone, self.head, self.variant, self.attention, num_classes,
                           self.weights_backbone, **extra)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Rebuild from ``asdict`` output (JSON turns tuples into lists; unknown keys are refused)."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def dataset_class_names(config: TrainConfig) -> list[str]:
    """The class names of the run's dataset (its ``classes.txt``, else VOC's 21)."""
    from ranlib.data import class_names

    return class_names(dataset_root(config))


def dataset_root(config: TrainConfig) -> Path:
    """The VOC-layout folder to read; the embedded dataset is generated there on first use."""
    if config.dataset == "mixed_boundary":
        from ranlib.data import ensure_mixed_boundary_dataset

        return ensure_mixed_boundary_dataset(config.data_root)
    if config.dataset == "voc":
        return Path(config.data_root)
    raise ValueError(f"unknown dataset {config.dataset!r}; choose mixed_boundary or voc")

