"""What ``fit`` refuses before anything is written, beside the run directory (``ranlib.engine.run_dir``).

``preflight`` checks what would otherwise fail minutes later: a device this machine lacks, backbone weights of an
unknown name (or a backbone whose optional library is missing), a batch that does not split over the processes or
is larger than the training split. The CLI words its ``ConfigError`` as a bad flag (exit status 2).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

from ranlib.backbone import weight_names
from ranlib.data import voc
from ranlib.efficientnet import INSTALL_HINT as TIMM_HINT  # timm itself is imported only to build one
from ranlib.engine import distributed
from ranlib.engine.config import ConfigError, TrainConfig, dataset_root
from ranlib.precision import check_device


def preflight(config: TrainConfig) -> Path:
    """Refuse, before anything is written, a configuration that would fail later: a device this machine lacks,
    backbone weights of an unknown name, a batch that does not split over the processes or is larger than the
    training split (read here: the embedded dataset is generated here on first use). Returns the data root.
    Refusals are ``ConfigError`` naming the field (the CLI's exit status 2). ``fit`` calls it after
    ``check_run_dir``, on the process of rank 0."""
    check_device(config.device)
    if config.backbone == "efficientnet_lite0" and importlib.util.find_spec("timm") is None:
        raise ConfigError("backbone", config.backbone, f"another backbone, or efficientnet_lite0 after installing timm "
                          f"({TIMM_HINT})")
    if config.weights_backbone is not None:
        names = weight_names(config.backbone)
        if config.weights_backbone.split(".")[-1] not in names:  # "ResNet18_Weights.IMAGENET1K_V1" is accepted too
            allowed = (f"one of {', '.join(names)} for {config.backbone}, or left out for random weights" if names
                       else f"left out: {config.backbone} has no pretrained weights")
            raise ConfigError("weights_backbone", config.weights_backbone, allowed)
    world = distributed.launched_world_size()  # the process group starts after preflight
    if config.batch_size % (world * config.grad_accum):
        raise ConfigError("batch_size", config.batch_size, f"a multiple of processes x grad_accum = {world} x "
                          f"{config.grad_accum}")
    root = dataset_root(config)
    images = len(voc(root, config.train_split))
    per_process = math.ceil(images / world)  # what ResumableSampler gives each process
    if config.batch_size // (world * config.grad_accum) > per_process:  # drop_last: not one micro-batch
        split = f"the {config.train_split} split of {root} holds {images} images"
        if world * config.grad_accum > 1:
            split += (f" ({per_process} per process, taken batch_size / ({world} processes x {config.grad_accum} "
                      "grad_accum) at a time)")
        raise ConfigError("batch_size", config.batch_size, f"at most {per_process * world * config.grad_accum}: "
                          f"{split}")
    return root


