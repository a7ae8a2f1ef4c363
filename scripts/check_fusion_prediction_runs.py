"""Notebook 08's solved prediction, checked on quick RAN models trained at other thread counts and seeds.

    python scripts/check_fusion_prediction_runs.py                  # 1 and 2 threads x seeds 0 and 1
    python scripts/check_fusion_prediction_runs.py --runs 1:0 2:3   # THREADS:SEED pairs

For each pair it trains (or reuses) the quick course's RAN (``course.MODES["quick"]``) with that many torch threads
and that seed in ``--out``, reads the attention statistics and the fusion's effect on the first 20 validation
scenes as notebook 08 does, applies the solution's rule (``"often"`` when the fused map moved more than 10 % of
|original| in the mixed bands) and runs ``ranlib.exercises.check_fusion_prediction`` on it. Training threads change
the model, and so the statistics: the check must pass the solution on every one. Exit 1 if it fails anywhere.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from ranlib import course, fit, load_checkpoint
from ranlib.data import val_transforms, voc
from ranlib.engine.checkpoint import final_path
from ranlib.evaluate import predict
from ranlib.exercises import ExerciseError, check_fusion_prediction
from ranlib.exercises.visualising import fusion_effect
from ranlib.viz import attention_statistics

IMAGES = 20  # notebook 08's N


def measure(model, dataset) -> tuple[dict, dict]:
    """Notebook 08's statistics and the fusion's effect (fractions of the labelled pixels) on its first images."""
    n = min(IMAGES, len(dataset))
    stats = attention_statistics(model, dataset, indices=range(n), width=4)
    totals, labelled = {"changed": 0.0, "fixed": 0.0, "broken": 0.0}, 0
    for i in range(n):
        image, mask = dataset[i]
        out = predict(model, image)
        pixels = int((mask != 255).sum())
        for key, value in fusion_effect(out.original, out.fused, mask[None]).items():
            totals[key] += value * pixels
        labelled += pixels
    return stats, {key: value / labelled for key, value in totals.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["1:0", "2:0", "1:1", "2:1"], metavar="THREADS:SEED")
    parser.add_argument("--out", type=Path, default=Path("runs/fusion_prediction"))
    args = parser.parse_args(argv)
    root = course.data_root("quick")
    failures = 0
    for pair in args.runs:
        threads, seed = map(int, pair.split(":"))
        torch.set_num_threads(threads)
        config = replace(course.MODES["quick"], variant="ran", seed=seed, data_root=str(root),
                         run_dir=str(args.out / f"ran-threads{threads}-seed{seed}"))
        fit(config)
        model, _, _ = load_checkpoint(final_path(Path(config.run_dir)))
        stats, effect = measure(model, voc(root, config.val_split, val_transforms()))
        change = stats["mixed boundary"]["relative_change"]
        prediction = "often" if change > 0.1 else "rarely"  # the solution's rule
        print(f"{threads} thread(s), seed {seed}: fused map moved {100 * change:.1f}% of |original| in the mixed "
              f"bands, changed {100 * effect['changed']:.2f}% of the labelled pixels; the solution predicts "
              f"{prediction!r}")
        try:
            check_fusion_prediction(prediction, effect, stats)
        except ExerciseError as error:
            failures += 1
            print("✗ " + str(error))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
