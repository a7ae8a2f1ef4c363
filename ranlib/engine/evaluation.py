"""``python -m ranlib evaluate``: the checkpoint a user names (a run directory, its final.pt or a resumable
iter_*.pt), loaded and checked (``ranlib.engine.checkpoint.load_checkpoint``: its sha256 sidecar, and that it is a
ranlib checkpoint), then scored by ``ranlib.evaluate.evaluate`` on a split and printed as a table."""

from __future__ import annotations

from pathlib import Path

from ranlib.data import DataError, class_names, make_loader, val_transforms, voc
from ranlib.engine.checkpoint import final_path, latest_intact, load_checkpoint
from ranlib.evaluate import evaluate, format_table
from ranlib.precision import resolve_device


def checkpoint_file(path: str | Path) -> Path:
    """The checkpoint a user named: a file, or a run directory's final.pt (else its newest intact checkpoint)."""
    path = Path(path)
    if path.is_dir():
        if final_path(path).exists():
            return final_path(path)
        return latest_intact(path / "checkpoints") or final_path(path)  # load_state names the nearest that exist
    return path


def run_evaluation(args) -> int:
    """``python -m ranlib evaluate`` (parsed by ``ranlib.cli``): load the checkpoint (checked against its sha256
    sidecar, refused when damaged or not a ranlib checkpoint), print the metric table."""
    device = resolve_device(args.device)  # a GPU this machine lacks is refused before anything loads
    path = checkpoint_file(args.checkpoint)
    model, config, _ = load_checkpoint(path, device=device)
    root = args.data_root or config.data_root
    if not Path(root).is_dir():
        where = "given with --data-root" if args.data_root else f"stored in {path} (relative to the folder it ran in)"
        raise DataError(f"dataset root {root} ({where}) does not exist here; pass --data-root with the dataset's "
                        f"folder{', e.g. data/mixed_boundary' if config.dataset == 'mixed_boundary' else ''}")
    dataset = voc(root, args.split or config.val_split, val_transforms())
    loader = make_loader(dataset, args.batch_size or config.eval_batch_size, shuffle=False, num_workers=0)
    metrics = evaluate(model, loader, model.num_classes, device, tta=args.tta, branch=args.branch,
                       progress=True)
    print(f"{path}: {config.variant} {config.backbone}, {args.branch} branch, {len(dataset)} images of {root}")
    print(format_table(metrics, class_names(root)))
    return 0
