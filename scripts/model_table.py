"""Parameters and forward GFLOPs at 321x321 for every backbone x head, beside torchvision's DeepLabv3.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on a forward pass of one image (a
multiply-add counts as 2 FLOPs). Models are built on the meta device, so nothing is computed and the table
takes seconds. The head's reach is ``ranlib.model.head_reach``: how far from a pixel its classifier's outermost tap
lies (``--head-dilation``, DeepLab's 12 by default). Prints a markdown table for the README:

    python scripts/model_table.py [--size 321] [--variant ran] [--head-dilation 12]
"""

from __future__ import annotations

import argparse

import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from ranlib import build_model
from ranlib.backbone import BACKBONES
from ranlib.heads import DEFAULT_DILATION, HEADS
from ranlib.model import head_reach


def count(model: torch.nn.Module, size: int) -> tuple[float, float]:
    """(millions of parameters, forward GFLOPs) for one ``size`` x ``size`` image."""
    params = sum(p.numel() for p in model.parameters()) / 1e6
    with FlopCounterMode(display=False) as counter:
        model.eval()(torch.empty(1, 3, size, size, device="meta"))
    return params, counter.get_total_flops() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=321)
    parser.add_argument("--variant", default="ran")
    parser.add_argument("--head-dilation", type=int, default=DEFAULT_DILATION)
    args = parser.parse_args()
    print(f"| model | head | head reach (px) | params (M) | forward GFLOPs at {args.size}x{args.size} |")
    print("|---|---|---:|---:|---:|")
    with torch.device("meta"):
        for backbone in BACKBONES:
            for head in HEADS:
                model = build_model(backbone, head, args.variant, head_dilation=args.head_dilation)
                params, gflops = count(model, args.size)
                print(f"| RAN-{backbone} ({args.variant}) | {head} | {head_reach(model.config)} | {params:.1f} "
                      f"| {gflops:.1f} |")
        reference = torchvision.models.segmentation.deeplabv3_resnet101(
            weights=None, weights_backbone=None, aux_loss=False)
        params, gflops = count(reference, args.size)
    print(f"| torchvision deeplabv3_resnet101 | ASPP (v3) | whole image (pooling) | {params:.1f} | {gflops:.1f} |")


if __name__ == "__main__":
    main()
