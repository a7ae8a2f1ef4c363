"""Training RAN the DeepLab way: SGD with poly learning rate, heads at 10x, AMP, checkpoints, resume, DDP.

``fit(TrainConfig(...))`` trains for ``iterations`` steps and writes a run directory (``ranlib.engine.run_dir``):
``config.json``, ``metrics.json``, ``log.csv``, TensorBoard events and plots, the newest two resumable
``checkpoints/iter_*.pt`` while it runs, and once it has finished ``final.pt`` (the weights only) instead of them.

Rerunning with the same ``run_dir`` resumes from the newest intact checkpoint (a finished run is left as it is,
and a damaged ``final.pt`` is refused); on CPU with ``deterministic`` the resumed run ends bit-identical to an
uninterrupted one (data order and augmentation are keyed by (seed, epoch, index), and every RNG state is in the
checkpoint). ``check_run_dir`` and ``preflight`` refuse, before anything is written, what would fail later (device,
weights, run directory, a batch larger than the split); ``config.json`` is written with the first checkpoint, so a
run that fails before it can be started again with corrected values. SIGINT (Ctrl-C) and SIGTERM during the
training loop stop it at the end of the step with a resumable checkpoint (``ranlib.engine.signals``); during set-up
and the final evaluation they act as usual, and the newest checkpoint is where a rerun resumes. The torch settings
``fit`` changes (deterministic algorithms, cuDNN's benchmark mode) are given back when it returns or raises.
``torchrun --nproc_per_node=N -m ranlib train`` trains on N processes with the same global batch; only rank 0 writes.
Interrupted, every process stops at the same iteration (they agree by an all-reduce after each step); torchrun
itself then reports the signal its own way (a traceback of its SignalException, exit status 1).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from ranlib.attention_stats import training_statistics
from ranlib.engine import distributed
from ranlib.engine.checkpoint import latest_intact, save_final, verify
from ranlib.engine.config import TrainConfig, dataset_class_names, dataset_root
from ranlib.engine.data_order import ResumableBatches, build_loaders
from ranlib.engine.preflight import preflight
from ranlib.engine.resumable import TrainingState, resume, save_resumable
from ranlib.engine.run_dir import check_run_dir, final_path, make_run_dir, save_config
from ranlib.engine.run_log import RunLog, eval_row
from ranlib.engine.run_plots import save_run_plots
from ranlib.engine.signals import TrainingInterrupted, agreed_signal, stop_at_step_boundary
from ranlib.engine.step import StepResult, StepSetup, train_step
from ranlib.evaluate import evaluate, named_metrics
from ranlib.losses import RANLoss
from ranlib.model import RAN, check_head_fits_crop
from ranlib.precision import resolve_amp, resolve_device
from ranlib.progress import tqdm

ATTENTION_BATCHES = 4  # validation batches behind log.csv's attn_* and fusion_* columns at each evaluation


class GradientOverflowWarning(RuntimeWarning):
    """fp16 training skipped a step whose gradients overflowed and lowered the loss scale (``GradScaler``'s remedy):
    a few early in a run are expected; filter them with ``warnings.simplefilter("ignore", GradientOverflowWarning)``."""


def poly_lr_factor(iteration: int, iterations: int, power: float) -> float:
    """DeepLab's poly schedule: ``(1 - iteration / iterations) ** power``."""
    return (1 - iteration / iterations) ** power


def build_optimizer(model: RAN, config: TrainConfig) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.LambdaLR]:
    """SGD with the backbone at ``lr`` and both heads at ``head_lr_mult * lr``; poly decay per iteration."""
    groups = [{"params": [p for p in model.backbone_parameters() if p.requires_grad], "lr": config.lr},
              {"params": [p for p in model.head_parameters() if p.requires_grad],
               "lr": config.lr * config.head_lr_mult}]
    optimizer = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: poly_lr_factor(it, config.iterations, config.poly_power))
    return optimizer, scheduler


def freeze_batchnorm(model: nn.Module) -> None:
    """Put every BatchNorm in eval mode and stop its affine parameters from training."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)


class Run(NamedTuple):
    """A run once ``fit`` has set it up: what its loop trains with, on which data, and where it logs."""

    config: TrainConfig
    state: TrainingState
    step: StepSetup
    batches: ResumableBatches  # the training micro-batches, from where the run stands
    val_set: torch.utils.data.Dataset  # all of it: the plots of a finished run draw from it
    val_loader: torch.utils.data.DataLoader  # this process's share
    log: RunLog


@contextlib.contextmanager
def torch_settings_restored():
    """Give back, when the block ends or raises, the process-wide torch settings ``fit`` changes: deterministic
    algorithms (with their warn-only mode) and cuDNN's benchmark mode."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.benchmark = benchmark


def fit(config: TrainConfig, allow_config_change: bool = False) -> Path:
    """Train (or resume) the run in ``config.run_dir`` and return that directory.

    The run directory is a contract: resuming with values that differ from its ``config.json`` raises
    ``RunDirConflict`` unless ``allow_config_change`` (fields in ``RESUMABLE_CHANGES`` such as the number of
    workers may always change). A finished run (its ``final.pt`` intact) is returned as it is: nothing is loaded,
    trained or rewritten; a damaged ``final.pt`` raises ``CheckpointError`` (naming the command that retrains the
    run), the folder untouched. ``check_run_dir`` and ``preflight`` check the configuration before anything is
    written.

    SIGINT and SIGTERM during training end the step, save a resumable checkpoint and raise
    ``TrainingInterrupted``; under torchrun every process stops at the same iteration."""
    run_dir = Path(config.run_dir)
    finished = final_path(run_dir).is_file()
    if finished:
        verify(final_path(run_dir))  # a damaged final.pt is refused; one without a sidecar (older runs) warns
    write_config = check_run_dir(config, finished, allow_config_change)
    if finished:
        return run_dir
    with torch_settings_restored():
        # Set-up: the processes, the data, the model and its optimiser, and where to resume.
        root = preflight(config) if distributed.launched_rank() == 0 else None
        device = distributed.setup(resolve_device(config.device))
        amp, world, main = resolve_amp(config.amp, device), distributed.world_size(), distributed.is_main()
        if main:
            make_run_dir(run_dir)
            check_head_fits_crop(config.model_config, config.crop_size)  # warns when the head outreaches the crop
        torch.manual_seed(config.seed)
        if config.deterministic:
            torch.use_deterministic_algorithms(True)
        elif device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        distributed.barrier()  # rank 0 generates the embedded dataset (in preflight); the others wait for it
        loader, sampler, val_set, val_loader = build_loaders(config, root or dataset_root(config))
        memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        state = build_state(config, device, amp, memory_format)
        start, epoch, position = resume(run_dir, state)
        log = RunLog(run_dir, start, enabled=main)
        batches = ResumableBatches(loader, sampler, epoch, position)
        net = state.model
        if world > 1:
            net = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
        step = StepSetup(torch.compile(net) if config.compile else net, RANLoss(config.loss_weights),
                         state.optimizer, state.scaler, device, amp, memory_format, config.grad_accum)
        run = Run(config, state, step, batches, val_set, val_loader, log)

        metrics = train_loop(run, start, write_config)

        # The end: metrics.json, the run's figures, then final.pt (which marks the run finished).
        if not metrics:  # the run was already complete: evaluate the final weights again
            metrics = evaluate(state.model, val_loader, state.model.num_classes, device, amp=amp)
        if main:
            finish(run, metrics)
        distributed.barrier()
        distributed.cleanup()
    return run_dir


def build_state(config: TrainConfig, device: torch.device, amp: str,
                memory_format: torch.memory_format) -> TrainingState:
    """The model of ``config`` on ``device`` in ``memory_format`` (BatchNorm frozen or synchronised as asked), its
    optimiser and poly schedule, and the loss scaler (enabled for fp16 only)."""
    model = RAN.from_config(config.model_config).to(device)
    if config.freeze_bn:
        freeze_batchnorm(model)
    if config.sync_bn and distributed.world_size() > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(memory_format=memory_format)
    optimizer, scheduler = build_optimizer(model, config)
    return TrainingState(model, optimizer, scheduler, torch.amp.GradScaler(device.type, enabled=amp == "fp16"))


def train_loop(run: Run, start: int, write_config: bool) -> dict:
    """Iterations ``start + 1`` to ``config.iterations``, one optimisation step each; log, evaluate and checkpoint on
    their schedules (``config.json`` with the first checkpoint when ``write_config``); at the end of a step in which
    SIGINT or SIGTERM came, a checkpoint, then ``TrainingInterrupted``. Returns the last evaluation's metrics (empty
    when no iteration was left)."""
    config, main, world = run.config, distributed.is_main(), distributed.world_size()
    metrics: dict = {}
    progress = tqdm(range(start, config.iterations), desc=f"train {config.variant}", disable=not main,
                    initial=start, total=config.iterations, dynamic_ncols=True)
    train_seconds, seen = 0.0, 0  # since the previous log row: training only, evaluation and saving left out
    received: list[int] = []  # signal numbers, appended by the handlers of stop_at_step_boundary
    with stop_at_step_boundary(received):
        for iteration in progress:
            done = iteration + 1
            logging = done % config.log_every == 0 or done == config.iterations
            tic = time.perf_counter()
            result, (loss, *parts) = take_step(run, done, logging)
            train_seconds, seen = train_seconds + time.perf_counter() - tic, seen + result.images * world
            if logging:
                row = {"iteration": done, "epoch": run.batches.epoch, "loss": loss,
                       "lr": run.state.scheduler.get_last_lr()[0], "images_per_s": seen / train_seconds}
                terms = {f"loss_{name}": value for name, value in zip(result.names, parts, strict=True)}
                run.log.write(row | terms | result.step_size)
                progress.set_postfix(loss=f"{loss:.3f}", lr=f"{row['lr']:.2e}", img_s=f"{row['images_per_s']:.1f}")
                train_seconds, seen = 0.0, 0
            if (config.eval_every and done % config.eval_every == 0) or done == config.iterations:
                metrics = evaluate_and_log(run, done)
            stop = agreed_signal(received, run.step.device)
            if done % config.checkpoint_every == 0 or done == config.iterations or stop:
                if write_config and main:
                    save_config(config)  # config.json goes with the first checkpoint
                write_config = False
                save_resumable(config, run.state, run.batches, done)
            if stop:
                progress.close()
                run.log.close()
                raise TrainingInterrupted(done, stop)
    progress.close()
    run.log.close()
    if write_config and main:  # a run resumed at its end with --allow-config-change: no checkpoint was written
        save_config(config)
    return metrics


def take_step(run: Run, iteration: int, logging: bool) -> tuple[StepResult, list[float]]:
    """The optimisation step of ``iteration`` (measuring its size at log steps), its losses read back, and the
    learning rate's schedule advanced. A non-finite loss stops training (``FloatingPointError``); an fp16 step
    skipped for overflow warns (``GradientOverflowWarning``)."""
    model, scaler = run.state.model, run.state.scaler
    model.train()
    if run.config.freeze_bn:
        freeze_batchnorm(model)
    scale_before = scaler.get_scale() if scaler.is_enabled() else None
    probe = model if logging and not run.config.compile else None  # a hook would make torch.compile recompile
    result = train_step(run.step, run.batches, probe)
    losses = result.losses.tolist()  # the iteration's one host sync
    if not math.isfinite(losses[0]):
        last = latest_intact(Path(run.config.run_dir) / "checkpoints")
        raise FloatingPointError(f"the loss became {losses[0]} at iteration {iteration}; training stopped. The last "
                                 f"good checkpoint ({last or 'none'}) is kept: lower --lr or use --amp bf16 before "
                                 "resuming.")
    if scale_before is not None and scaler.get_scale() < scale_before and distributed.is_main():
        warnings.warn(f"fp16: gradient overflow at iteration {iteration}, step skipped; loss scale {scale_before:g} "
                      f"-> {scaler.get_scale():g}", GradientOverflowWarning, stacklevel=2)
    run.state.scheduler.step()
    return result, losses


def evaluate_and_log(run: Run, iteration: int) -> dict:
    """Evaluate on the validation set (every process its share), write the row to log.csv and TensorBoard with
    the attention-over-training statistics of the first ``ATTENTION_BATCHES`` batches, print the headline."""
    model = run.state.model
    metrics = evaluate(model, run.val_loader, model.num_classes, run.step.device, amp=run.step.amp,
                       progress=distributed.is_main())
    row = {"iteration": iteration, "epoch": run.batches.epoch} | eval_row(metrics)
    if distributed.is_main() and model.conv_rev is not None:  # the attention over training
        stats = training_statistics(model, itertools.islice(run.val_loader, ATTENTION_BATCHES))
        row |= {k: v for k, v in stats.items() if v == v}  # nan (subtract: no attention) stays empty
    run.log.write(row)
    if distributed.is_main():
        tqdm.write(f"iteration {iteration}: val mIoU {100 * metrics['miou']:.1f}, mixed-boundary mIoU "
                   f"{100 * metrics['mixed_miou'][4]:.1f}")
    return metrics


def finish(run: Run, metrics: dict) -> None:
    """Write a finished run's metrics.json and figures, then final.pt, which marks the run as finished; only then
    are the resumable checkpoints removed (``save_final``)."""
    config, model, run_dir = run.config, run.state.model, Path(run.config.run_dir)
    names = dataset_class_names(config)
    (run_dir / "metrics.json").write_text(json.dumps(named_metrics(metrics, names), indent=2))
    save_run_plots(run_dir, model, run.val_set, metrics, names, run.step.device)
    save_final({"model": model.state_dict(), "iteration": config.iterations, "config": asdict(config),
                "model_config": asdict(config.model_config)}, run_dir)
