"""Parameters and forward GFLOPs at 321x321 for every backbone x head, beside torchvision's DeepLabv3.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on a forward pass of one image (a
multiply-add counts as 2 FLOPs). Models are built on the meta device, so nothing is computed and the table
takes seconds. The head's reach is ``ranlib.model.head_reach``: how far from a pixel its classifier's outermost tap
lies (``--head-dilation``, DeepLab's 12 by default). Prints a Markdown table;
``--write-results docs/results.md`` also writes it between the ``model-size`` markers there:

    python scripts/model_table.py [--size 321] [--variant ran] [--head-dilation 12] [--write-results FILE]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from ranlib import build_model
from ranlib.model import head_reach
from ranlib.model_config import BACKBONES, DEFAULT_DILATION, HEADS
from ranlib.results_doc import header, write_section

PAPER_SIZED = tuple(b for b in BACKBONES if b != "tiny")  # tiny is for tests, not a model to report


def count(model: torch.nn.Module, size: int) -> tuple[float, float]:
    """(millions of parameters, forward GFLOPs) for one ``size`` x ``size`` image."""
    params = sum(p.numel() for p in model.parameters()) / 1e6
    with FlopCounterMode(display=False) as counter:
        model.eval()(torch.empty(1, 3, size, size, device="meta"))
    return params, counter.get_total_flops() / 1e9


def table(size: int, variant: str, head_dilation: int, backbones=PAPER_SIZED) -> str:
    """The Markdown table: every backbone x head as ``variant``, the DeepLab baseline of RAN-ResNet-101-LargeFOV,
    torchvision's DeepLabv3-ResNet101, then what the reverse branch costs."""
    lines = [f"| model | head | head reach (px) | params (M) | forward GFLOPs at {size}x{size} |",
             "|---|---|---:|---:|---:|"]
    flops = {}
    with torch.device("meta"):
        arms = [(b, h, variant) for b in backbones for h in HEADS]
        if "resnet101" in backbones and variant != "baseline":
            arms.append(("resnet101", "largefov", "baseline"))
        for backbone, head, arm_variant in arms:
            model = build_model(backbone, head, arm_variant, head_dilation=head_dilation)
            params, flops[backbone, head, arm_variant] = count(model, size)
            name = f"DeepLab baseline {backbone}" if arm_variant == "baseline" else f"RAN-{backbone} ({arm_variant})"
            lines.append(f"| {name} | {head} | {head_reach(model.config)} | {params:.1f} | "
                         f"{flops[backbone, head, arm_variant]:.1f} |")
        reference = torchvision.models.segmentation.deeplabv3_resnet101(
            weights=None, weights_backbone=None, aux_loss=False)
        params, flops["deeplabv3"] = count(reference, size)
    lines.append(f"| torchvision deeplabv3_resnet101 | ASPP (v3) | whole image (pooling) | {params:.1f} | "
                 f"{flops['deeplabv3']:.1f} |")
    ran = flops.get(("resnet101", "largefov", "ran"))
    if ran is not None:
        extra = 100 * (ran / flops["resnet101", "largefov", "baseline"] - 1)
        lines.append(f"\nRAN-ResNet101-LargeFOV needs {extra:.1f}% "
                     f"more forward FLOPs than its DeepLab baseline and {ran / flops['deeplabv3']:.2f}x those of "
                     "torchvision's DeepLabv3-ResNet101.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=321)
    parser.add_argument("--variant", default="ran")
    parser.add_argument("--head-dilation", type=int, default=DEFAULT_DILATION)
    parser.add_argument("--backbones", nargs="+", choices=BACKBONES, default=list(PAPER_SIZED))
    parser.add_argument("--write-results", type=Path, metavar="FILE",
                        help="also write the table between FILE's <!-- model-size:begin/end --> markers")
    args = parser.parse_args(argv)
    text = table(args.size, args.variant, args.head_dilation, tuple(args.backbones))
    print(text)
    if args.write_results:
        write_section(args.write_results, "model-size", header("model_table.py", argv, torch.get_num_threads()) + text,
                      title="Model size")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
