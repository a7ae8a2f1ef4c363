"""Training RAN the DeepLab way: SGD with poly learning rate, heads at 10x, AMP, checkpoints, resume, DDP.

``fit(TrainConfig(...))`` trains for ``iterations`` steps and writes a run directory::

    config.json  metrics.json  log.csv  tb/ (TensorBoard)  *.png (plots)
    checkpoints/iter_*.pt   while it runs: the newest two resumable checkpoints
    final.pt                when it has finished: the weights only; the iter_*.pt files are then removed

Rerunning with the same ``run_dir`` resumes from the newest intact checkpoint (a finished run is left as it is,
and a damaged ``final.pt`` is refused); on CPU with ``deterministic`` the resumed run ends bit-identical to an
uninterrupted one (data order and augmentation are keyed by (seed, epoch, index), and every RNG state is in the
checkpoint). ``preflight`` refuses, before anything is written, what would fail later (device, weights, run
directory, a batch larger than the split); ``config.json`` is written with the first checkpoint, so a run that
fails before it can be started again with corrected values. SIGINT (Ctrl-C) and SIGTERM during the training
loop stop it at the end of the step with a resumable checkpoint (``TrainingInterrupted``); during set-up and the
final evaluation they act as usual, and the newest checkpoint is where a rerun resumes.
``torchrun --nproc_per_node=N -m ranlib train`` trains on N processes with the same global batch; only rank 0 writes.
Interrupted, every process stops at the same iteration (they agree by an all-reduce after each step); torchrun
itself then reports the signal its own way (a traceback of its SignalException, exit status 1).
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn
from torch.utils.data import Subset

from ranlib.attention_stats import training_statistics
from ranlib.backbone import weight_names
from ranlib.data import make_loader, train_transforms, val_transforms, voc
from ranlib.efficientnet import INSTALL_HINT as TIMM_HINT  # timm itself is imported only to build one
from ranlib.engine import distributed
from ranlib.engine.checkpoint import (
    checkpoint_path,
    final_path,
    latest_intact,
    load_state,
    rng_state,
    save_checkpoint,
    save_final,
    set_rng_state,
    verify,
)
from ranlib.engine.config import ConfigError, TrainConfig, check_run_dir, dataset_class_names, dataset_root
from ranlib.engine.data_order import AugmentedDataset, ResumableBatches, ResumableSampler
from ranlib.engine.run_log import RunLog, eval_row
from ranlib.engine.run_plots import save_run_plots
from ranlib.evaluate import evaluate, named_metrics
from ranlib.losses import RANLoss
from ranlib.model import RAN, check_head_fits_crop
from ranlib.precision import autocast, check_device, resolve_amp, resolve_device
from ranlib.progress import tqdm
from ranlib.step_size import feature_gradient_norms, update_norm

ATTENTION_BATCHES = 4  # validation batches behind log.csv's attn_* and fusion_* columns at each evaluation


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


class UnwritableRunDir(OSError):
    """The run directory cannot take a checkpoint; the message says what to do."""


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM stopped ``fit`` at a step boundary after it saved a resumable checkpoint of
    ``iteration``: calling ``fit`` again with the same configuration resumes there. A KeyboardInterrupt, so code
    that stops on Ctrl-C stops on it too; ``signal`` is the signal's number (the CLI exits with 128 + it)."""

    def __init__(self, iteration: int, signum: int):
        super().__init__(f"{signal.Signals(signum).name} stopped training at iteration {iteration}, which is saved; "
                         "fit the same configuration again to resume")
        self.iteration, self.signal = iteration, signum


def check_run_dir_path(run_dir: Path) -> None:
    """Refuse a run directory that is a file or cannot be made, without making it."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError("run_dir", str(run_dir), "a folder, not a file: choose a new folder or a run's folder")
    existing = next(p for p in (run_dir, *run_dir.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise UnwritableRunDir(f"run directory {run_dir} is not writable ({existing} is a file); choose another "
                               "--run-dir")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UnwritableRunDir(f"run directory {run_dir} is not writable (no write permission on {existing}); "
                               "choose another --run-dir or fix its permissions")


def preflight(config: TrainConfig) -> Path:
    """Refuse, before anything is written, a configuration that would fail later: a device this machine lacks,
    backbone weights of an unknown name, a run directory that is a file, a batch that does not split over the
    processes or is larger than the training split (read here: the embedded dataset is generated here on first
    use). Returns the data root. Refusals are ``ConfigError`` naming the field (the CLI's exit status 2).
    ``fit`` calls it first, on the process of rank 0."""
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
    check_run_dir_path(Path(config.run_dir))
    world = int(os.environ.get("WORLD_SIZE", 1))  # torchrun's; set before the process group starts
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


@contextlib.contextmanager
def stop_at_step_boundary(received: list[int]):
    """While training: SIGINT and SIGTERM only append their number to ``received``, and ``fit`` stops at the end
    of the step with a checkpoint; the previous handlers come back afterwards. Outside the main thread, where
    Python cannot set handlers, signals act as before."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        signal.signal(signum, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def agreed_signal(received: list[int], device: torch.device) -> int | None:
    """The signal that stops training at this step boundary, or None: the first this process received; under
    DDP one that any process received, so that every process stops at the same iteration (one all-reduce)."""
    if distributed.world_size() == 1:
        return received[0] if received else None
    counts = torch.tensor([signal.SIGINT in received, signal.SIGTERM in received], dtype=torch.int64, device=device)
    distributed.all_reduce_sum(counts)
    sigint, sigterm = counts.tolist()
    return signal.SIGINT if sigint else signal.SIGTERM if sigterm else None


def probe_run_dir(run_dir: Path) -> None:
    """Fail before training when ``run_dir`` cannot take a checkpoint (read-only, missing rights, full)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_probe"
        with open(probe, "wb") as f:
            f.write(b"\0" * (1 << 20))
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as err:
        raise UnwritableRunDir(f"run directory {run_dir} is not writable ({err.strerror or err}); choose another "
                      "--run-dir, fix its permissions or free some space before training") from err


class StepResult(NamedTuple):
    """What one optimisation step returns: the loss and its parts (averaged over the micro-batches, still on the
    device, so that reading them is the step's only host sync), their names, and the images it trained on."""

    losses: torch.Tensor  # (1 + parts,): the total loss, then each part in ``names`` order
    names: tuple[str, ...]
    images: int
    # with ``probe``: grad_f_<term> and grad_f_total (gradient norms into the backbone's features, first
    # micro-batch) and backbone_update (norm of the backbone's parameter change); empty otherwise
    step_size: dict[str, float] = {}


def train_step(forward: Callable, criterion: nn.Module, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, batches: Iterator, device: torch.device, amp: str = "off",
               grad_accum: int = 1, memory_format: torch.memory_format = torch.contiguous_format,
               probe: RAN | None = None) -> StepResult:
    """One optimisation step, as ``fit`` and the benchmark (``ranlib.bench.throughput``) both run it.

    ``grad_accum`` micro-batches from ``batches``: forward under ``autocast`` (the loss outside it), backward of
    the scaled loss; then the optimiser's step through the loss scaler (a no-op scaler unless fp16).

    ``probe`` (the unwrapped model; ``fit`` passes it at log steps only) also measures the step's size
    (``ranlib.step_size``): the gradient norm each weighted loss term sends into the backbone's features on the
    first micro-batch, and the norm of the backbone's update. Without it nothing extra runs."""
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


def build_loaders(config: TrainConfig, root: Path, rank: int, world: int):
    """The training loader (augmented, in the resumable order of ``ResumableSampler``, ``config.batch_size``
    split into micro-batches over processes and accumulation steps), its sampler, the validation set, and this
    process's share of the validation set as a loader."""
    train_set = AugmentedDataset(voc(root, config.train_split), train_transforms(config.crop_size, config.scale_range),
                                 config.seed)
    val_set = voc(root, config.val_split, val_transforms())
    sampler = ResumableSampler(len(train_set), shuffle=True, seed=config.seed, rank=rank, world=world)
    micro_batch = config.batch_size // (world * config.grad_accum)
    # Loaders draw their workers' base seed from their own generator, not the global RNG (which dropout uses),
    # so that starting a loader again on resume leaves the global RNG where the uninterrupted run has it.
    loader = make_loader(train_set, micro_batch, shuffle=False, drop_last=True, sampler=sampler,
                         num_workers=config.num_workers, generator=torch.Generator().manual_seed(config.seed))
    val_shard = Subset(val_set, range(rank, len(val_set), world))  # each process evaluates its share
    val_loader = make_loader(val_shard, config.eval_batch_size, shuffle=False, num_workers=config.num_workers,
                             generator=torch.Generator().manual_seed(config.seed))
    return loader, sampler, val_set, val_loader


def save_resumable(run_dir: Path, config: TrainConfig, iteration: int, batches: ResumableBatches, model: RAN,
                   optimizer, scheduler, scaler, write_config: bool = False) -> None:
    """A resumable checkpoint of iteration ``iteration``: weights, optimiser, schedule, loss scale, every
    process's RNG state and the data position; with ``write_config`` the run's ``config.json`` first. Every
    process calls it (the RNG states are gathered); rank 0 writes."""
    states = [rng_state()]
    if distributed.world_size() > 1:
        states = [None] * distributed.world_size()
        torch.distributed.all_gather_object(states, rng_state())
    if distributed.is_main():
        if write_config:
            (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
        save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "rng": states,
                         "iteration": iteration, "epoch": batches.epoch, "position": batches.position,
                         "config": asdict(config), "model_config": asdict(config.model_config)},
                        checkpoint_path(run_dir, iteration), config.keep_checkpoints)


def resume(run_dir: Path, model: RAN, optimizer, scheduler, scaler) -> tuple[int, int, int]:
    """Load the newest intact resumable checkpoint of ``run_dir`` into the model, optimiser, schedule, loss scaler
    and this process's RNGs; return where it stopped, ``(iteration, epoch, position)`` (zeros for a new run)."""
    resume_from = latest_intact(run_dir / "checkpoints")
    if resume_from is None:
        return 0, 0, 0
    state = load_state(resume_from)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    rank = distributed.rank()
    set_rng_state(state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0])
    if distributed.is_main():
        tqdm.write(f"resuming {run_dir} from {resume_from.name} (iteration {state['iteration']})")
    return state["iteration"], state["epoch"], state["position"]


def finish(run_dir: Path, config: TrainConfig, model: RAN, val_set, metrics: dict, device: torch.device) -> None:
    """Write a finished run's metrics.json and figures, then final.pt, which marks the run as finished; only then
    are the resumable checkpoints removed (``save_final``)."""
    names = dataset_class_names(config)
    (run_dir / "metrics.json").write_text(json.dumps(named_metrics(metrics, names), indent=2))
    save_run_plots(run_dir, model, val_set, metrics, names, device)
    save_final({"model": model.state_dict(), "iteration": config.iterations, "config": asdict(config),
                "model_config": asdict(config.model_config)}, run_dir)


def fit(config: TrainConfig, allow_config_change: bool = False) -> Path:
    """Train (or resume) the run in ``config.run_dir`` and return that directory.

    The run directory is a contract: resuming with values that differ from its ``config.json`` raises
    ``RunDirConflict`` unless ``allow_config_change`` (fields in ``RESUMABLE_CHANGES`` such as the number of
    workers may always change). A finished run (its ``final.pt`` intact) is returned as it is: nothing is loaded,
    trained or rewritten; a damaged ``final.pt`` raises ``CheckpointError`` (naming the command that retrains the
    run), the folder untouched. ``preflight`` checks the configuration before anything is written.

    SIGINT and SIGTERM during training end the step, save a resumable checkpoint and raise
    ``TrainingInterrupted``; under torchrun every process stops at the same iteration."""
    # Set-up: the run directory, the processes, the data, the model and its optimiser, and where to resume.
    run_dir = Path(config.run_dir)
    finished = final_path(run_dir).is_file()
    if finished:
        verify(final_path(run_dir))  # a damaged final.pt is refused; one without a sidecar (older runs) warns
    write_config = check_run_dir(config, finished, allow_config_change)
    if finished:
        return run_dir
    root = preflight(config) if os.environ.get("RANK", "0") == "0" else None  # torchrun's rank, known before setup
    device = distributed.setup(resolve_device(config.device))
    amp = resolve_amp(config.amp, device)
    rank, world, main = distributed.rank(), distributed.world_size(), distributed.is_main()
    model_config = config.model_config
    if main:
        probe_run_dir(run_dir)
        check_head_fits_crop(model_config, config.crop_size)  # warns when the head outreaches the crop
    torch.manual_seed(config.seed)
    if config.deterministic:
        torch.use_deterministic_algorithms(True)
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    distributed.barrier()  # rank 0 generates the embedded dataset (in preflight); the others wait for it
    loader, sampler, val_set, val_loader = build_loaders(config, root or dataset_root(config), rank, world)

    model = RAN.from_config(model_config).to(device)
    if config.freeze_bn:
        freeze_batchnorm(model)
    if config.sync_bn and world > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer, scheduler = build_optimizer(model, config)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    criterion = RANLoss(config.loss_weights)

    start, epoch, position = resume(run_dir, model, optimizer, scheduler, scaler)
    log = RunLog(run_dir, start, enabled=main)
    batches = ResumableBatches(loader, sampler, epoch, position)
    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    forward = torch.compile(net) if config.compile else net

    # The loop: one optimisation step per iteration; log, evaluate and checkpoint on their schedules; stop with a
    # checkpoint at the end of the step in which SIGINT or SIGTERM came.
    metrics: dict = {}
    progress = tqdm(range(start, config.iterations), desc=f"train {config.variant}", disable=not main,
                    initial=start, total=config.iterations, dynamic_ncols=True)
    train_seconds, seen = 0.0, 0  # since the previous log row: training only, evaluation and saving left out
    received: list[int] = []  # signal numbers, appended by the handlers of stop_at_step_boundary
    with stop_at_step_boundary(received):
        for iteration in progress:
            model.train()
            if config.freeze_bn:
                freeze_batchnorm(model)
            scale_before = scaler.get_scale() if scaler.is_enabled() else None
            done = iteration + 1
            logging = done % config.log_every == 0 or done == config.iterations
            probe = model if logging and not config.compile else None  # a hook would make torch.compile recompile
            tic = time.perf_counter()
            step = train_step(forward, criterion, optimizer, scaler, batches, device, amp, config.grad_accum,
                              memory_format, probe)
            loss_sum, *part_values = step.losses.tolist()  # the iteration's one host sync
            train_seconds, seen = train_seconds + time.perf_counter() - tic, seen + step.images * world
            if not math.isfinite(loss_sum):
                last = latest_intact(run_dir / "checkpoints")
                raise FloatingPointError(
                    f"the loss became {loss_sum} at iteration {iteration + 1}; training stopped. The last good "
                    f"checkpoint ({last or 'none'}) is kept: lower --lr or use --amp bf16 before resuming.")
            if scale_before is not None and scaler.get_scale() < scale_before and main:
                tqdm.write(f"fp16: gradient overflow at iteration {iteration + 1}, step skipped; loss scale "
                           f"{scale_before:g} -> {scaler.get_scale():g}")
            scheduler.step()
            if logging:
                row = {"iteration": done, "epoch": batches.epoch, "loss": loss_sum, "lr": scheduler.get_last_lr()[0],
                       "images_per_s": seen / train_seconds}
                log.write(row | {f"loss_{k}": v for k, v in zip(step.names, part_values, strict=True)} | step.step_size)
                progress.set_postfix(loss=f"{loss_sum:.3f}", lr=f"{row['lr']:.2e}", img_s=f"{row['images_per_s']:.1f}")
                train_seconds, seen = 0.0, 0
            if (config.eval_every and done % config.eval_every == 0) or done == config.iterations:
                metrics = evaluate_and_log(model, val_loader, config, device, amp, log, done, batches.epoch)
            saving = done % config.checkpoint_every == 0 or done == config.iterations
            stop = agreed_signal(received, device)
            if saving or stop:
                save_resumable(run_dir, config, done, batches, model, optimizer, scheduler, scaler, write_config)
                write_config = False  # config.json goes with the first checkpoint
            if stop:
                progress.close()
                log.close()
                raise TrainingInterrupted(done, stop)
    progress.close()
    log.close()
    if main and write_config:  # a run resumed at its end with --allow-config-change: no checkpoint was written
        (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))

    # The end: metrics.json, the run's figures, then final.pt (which marks the run finished).
    if not metrics:  # the run was already complete: evaluate the final weights again
        metrics = evaluate(model, val_loader, model.num_classes, device, amp=amp)
    if main:
        finish(run_dir, config, model, val_set, metrics, device)
    distributed.barrier()
    distributed.cleanup()
    return run_dir


def evaluate_and_log(model: RAN, val_loader, config: TrainConfig, device: torch.device, amp: str, log: RunLog,
                     iteration: int, epoch: int) -> dict:
    """Evaluate on the validation set (every process its share), write the row to log.csv and TensorBoard with
    the attention-over-training statistics of the first ``ATTENTION_BATCHES`` batches, print the headline."""
    metrics = evaluate(model, val_loader, model.num_classes, device, amp=amp,
                       progress=distributed.is_main())
    row = {"iteration": iteration, "epoch": epoch} | eval_row(metrics)
    if distributed.is_main() and model.conv_rev is not None:  # the attention over training
        stats = training_statistics(model, itertools.islice(val_loader, ATTENTION_BATCHES))
        row |= {k: v for k, v in stats.items() if v == v}  # nan (subtract: no attention) stays empty
    log.write(row)
    if distributed.is_main():
        tqdm.write(f"iteration {iteration}: val mIoU {100 * metrics['miou']:.1f}, mixed-boundary mIoU "
                   f"{100 * metrics['mixed_miou'][4]:.1f}")
    return metrics
