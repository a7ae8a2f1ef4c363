"""One optimisation step, as ``fit`` and the benchmark (``ranlib.bench.throughput``) both run it.

``train_step(setup, batches)`` takes ``setup.grad_accum`` micro-batches, runs the forward pass under ``autocast``
and the loss outside it, the backward pass of the scaled loss, and the optimiser's step through the loss scaler.
``StepSetup`` holds what every step of a run is made of; ``StepResult`` is what one step returns, its losses left
on the device so that reading them is the step's one host sync.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch
from torch import nn

from ranlib.model import RAN
from ranlib.precision import autocast
from ranlib.step_size import feature_gradient_norms, update_norm


class StepResult(NamedTuple):
    """What one optimisation step returns: the loss and its parts (averaged over the micro-batches, still on the
    device, so that reading them is the step's only host sync), their names, and the images it trained on."""

    losses: torch.Tensor  # (1 + parts,): the total loss, then each part in ``names`` order
    names: tuple[str, ...]
    images: int
    # with ``probe``: grad_f_<term> and grad_f_total (gradient norms into the backbone's features, first
    # micro-batch) and backbone_update (norm of the backbone's parameter change); empty otherwise
    step_size: dict[str, float] = {}


class StepSetup(NamedTuple):
    """What every optimisation step of a run is made of; ``train_step`` takes it whole."""

    forward: Callable  # the model as called: fit's is wrapped in DDP and/or torch.compile when asked for
    criterion: nn.Module  # (output, masks) -> (loss, {part: loss}), e.g. RANLoss
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler  # a no-op unless fp16
    device: torch.device
    amp: str = "off"  # off | bf16 | fp16: autocast's dtype
    memory_format: torch.memory_format = torch.contiguous_format
    grad_accum: int = 1  # micro-batches per step


def train_step(setup: StepSetup, batches: Iterator, probe: RAN | None = None) -> StepResult:
    """One optimisation step, as ``fit`` and the benchmark (``ranlib.bench.throughput``) both run it.

    ``setup.grad_accum`` micro-batches from ``batches``: forward under ``autocast`` (the loss outside it), backward
    of the scaled loss; then the optimiser's step through the loss scaler (a no-op scaler unless fp16).

    ``probe`` (the unwrapped model; ``fit`` passes it at log steps only) also measures the step's size
    (``ranlib.step_size``): the gradient norm each weighted loss term sends into the backbone's features on the
    first micro-batch, and the norm of the backbone's update. Without it nothing extra runs."""
    forward, criterion, optimizer, scaler, device, amp, memory_format, grad_accum = setup
    optimizer.zero_grad(set_to_none=True)
    totals, names, images_seen, step_size = None, (), 0, {}
    features, hook, before = [], None, None
    if probe is not None:  # keep the backbone's output of the first micro-batch, and the weights before the step
        hook = probe.backbone.register_forward_hook(lambda module, args, out: features.append(out))
        before = [p.detach().clone() for p in probe.backbone_parameters()]
    try:
        for micro in range(grad_accum):
            images, masks = next(batches)
            images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)  # (B, 3, H, W)
            masks = masks.to(device, non_blocking=True)  # (B, H, W)
            with autocast(device, amp):
                output = forward(images)
            loss, parts = criterion(output, masks)
            if probe is not None and micro == 0:
                hook.remove()
                norms = feature_gradient_norms(parts, criterion.weights, features[0])
                step_size = {f"grad_f_{name}": value for name, value in norms.items()}
            scaler.scale(loss / grad_accum).backward()
            values = torch.stack([loss.detach(), *(v.detach() for v in parts.values())]) / grad_accum
            totals, names = (values if totals is None else totals + values), tuple(parts)
            images_seen += images.shape[0]
    finally:
        if hook is not None:
            hook.remove()
    scaler.step(optimizer)
    scaler.update()
    if before is not None:
        step_size["backbone_update"] = update_norm(before, probe.backbone_parameters())
    return StepResult(totals, names, images_seen, step_size)


