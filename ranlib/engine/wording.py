"""How the engine's messages name the command line: the flag of each field, the train command that makes a
configuration, the command that retrains a run, and the checkpoints near a path that does not exist.

The engine's errors tell the user what to type (``CheckpointError`` names the retrain command of a damaged
``final.pt``, a missing checkpoint the nearest that exist); this module words those commands from a
``TrainConfig`` without the parser (``ranlib.cli``, which reads ``flag_of`` from here; tests/test_cli.py checks
that the two agree). Torch-free.
"""

from __future__ import annotations

import difflib
import json
import shlex
from dataclasses import fields, replace
from pathlib import Path

from ranlib.engine.config import TrainConfig
from ranlib.engine.run_dir import FINAL, PATTERN, final_path

# The train flags: each field's is --field-name, except these; the fields in NO_FLAG have none (the CLI trains
# them at their defaults). tests/test_cli.py checks both against the parser.
FLAG_OF_FIELD = {"num_workers": "--workers"}
NO_FLAG = ("momentum", "weight_decay", "poly_power")


def flag_of(field: str) -> str:
    """The ``python -m ranlib train`` flag that sets TrainConfig field ``field``."""
    return FLAG_OF_FIELD.get(field, "--" + field.replace("_", "-"))


def train_command_line(config: TrainConfig, run_dir: str | Path | None = None) -> str | None:
    """``python -m ranlib train …`` with the flags that make ``config`` (in ``run_dir`` if given): the dataset, data
    root and run directory, and every field that differs from the dataset's defaults. None when a field without
    a flag (``NO_FLAG``) differs, since no command line gives that configuration."""
    if run_dir is not None:
        config = replace(config, run_dir=str(run_dir))
    defaults, argv = TrainConfig.for_dataset(config.dataset), ["train"]
    for field in fields(TrainConfig):
        value = getattr(config, field.name)
        if value == getattr(defaults, field.name) and field.name not in ("dataset", "data_root", "run_dir"):
            continue
        if field.name in NO_FLAG:
            return None
        if value is None or value is False:
            return None  # a flag can switch a boolean on and set a value, not set None or switch one off
        values = value if isinstance(value, tuple) else () if value is True else (value,)
        argv += [flag_of(field.name), *map(str, values)]
    return shlex.join(["python", "-m", "ranlib", *argv])


def retrain_command(run_dir: Path) -> str:
    """The shell command that removes ``run_dir``'s final.pt and trains the run again from its ``config.json``:
    ``python -m ranlib train`` with the run's flags, or a ``python -c`` call of ``fit`` when no flags express it."""
    run_dir = Path(run_dir)
    remove = shlex.join(["rm", str(final_path(run_dir)), str(final_path(run_dir)) + ".sha256"])
    saved = run_dir / "config.json"
    try:
        config = TrainConfig.from_dict(json.loads(saved.read_text()))
    except (OSError, ValueError, TypeError):
        return f"{remove}, then rerun the train command that made the run (its config.json is missing or unreadable)"
    command = train_command_line(config, run_dir)
    if command is None:
        code = f"import json, ranlib; ranlib.fit(ranlib.TrainConfig.from_dict(json.load(open({str(saved)!r}))))"
        command = shlex.join(["python", "-c", code])
    return f"{remove} && {command}"


def nearest_checkpoints(path: Path, limit: int = 5) -> list[Path]:
    """Checkpoints that exist near a missing ``path``: under its closest existing ancestor folder and under
    ``runs/``, most similar name first."""
    path = Path(path)
    folder = next((p for p in path.parents if p.is_dir()), Path("."))
    found = set()
    for base in {folder, Path("runs")}:
        if base.is_dir():
            for depth in ("", "*/", "*/*/"):
                found.update(base.glob(f"{depth}{FINAL}"))
                found.update(base.glob(f"{depth}checkpoints/{PATTERN}"))
    return sorted(found, key=lambda p: -difflib.SequenceMatcher(None, str(path), str(p)).ratio())[:limit]
