"""The scripts behind the README's tables and figures, run end to end on tiny inputs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from ranlib.data import make_mixed_boundary_dataset
from ranlib.engine.train import TrainConfig, fit

SCRIPTS = Path(__file__).parent.parent / "scripts"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ablation_table_from_hand_made_runs(tmp_path, capsys):
    ablation = load_script("ablation")
    values = {("baseline", 0): 0.30, ("baseline", 1): 0.40, ("subtract", 0): 0.20, ("subtract", 1): 0.20,
              ("ran", 0): 0.50, ("ran", 1): 0.46, ("ran-normalized", 0): 0.1, ("ran-normalized", 1): 0.3}
    for (variant, seed), miou in values.items():
        run = ablation.run_dir(tmp_path, variant, seed)
        run.mkdir(parents=True)
        bands = {"2": 0.0, "4": miou / 2, "8": 0.0, "16": 0.0}
        (run / "metrics.json").write_text(json.dumps({"miou": miou, "boundary_miou": bands, "mixed_miou": bands}))
    assert ablation.main(["--seeds", "0", "1", "--runs", str(tmp_path), "--no-train", "--normalized"]) == 0
    rows = {line.split("|")[1].strip(): line for line in capsys.readouterr().out.splitlines() if line.startswith("| `")}
    # mean 35.0, sample sd |30 - 40| / sqrt(2) = 7.07; the bands are half the mIoU
    assert "| 35.0 ± 7.1 (30.0 / 40.0) | 17.5 ± 3.5 (15.0 / 20.0) |" in rows["`baseline`"]
    assert "| 20.0 ± 0.0 (20.0 / 20.0) |" in rows["`subtract`"]
    assert "| 48.0 ± 2.8 (50.0 / 46.0) |" in rows["`ran`"]
    assert "| 20.0 ± 14.1 (10.0 / 30.0) |" in rows["`ran-normalized`"]
    normalized = ablation.config("ran-normalized", 1, tmp_path)
    assert (normalized.variant, normalized.attention, normalized.seed) == ("ran", "normalized", 1)
    with pytest.raises(SystemExit, match="metrics.json is missing"):
        ablation.main(["--seeds", "7", "--runs", str(tmp_path), "--no-train"])


def test_ablation_instruments_table_from_hand_made_values():
    ablation = load_script("ablation")
    ran = {"original_miou": 47.74, "fused_miou": 47.66, "original_mixed": 25.1, "fused_mixed": 25.0, "changed": 0.254,
           "changed_mixed": 1.1, "net": -0.0234, "open_mixed": 5.0, "open_rest": 2.3, "original_mean": 7.24}
    subtract = ran | {"open_mixed": float("nan"), "open_rest": float("nan"), "net": 0.061}
    rows = ablation.instruments_table([("ran", 0, ran), ("subtract", 1, subtract)]).splitlines()
    assert rows[2] == "| `ran` | 0 | 47.7 / 47.7 | 25.1 / 25.0 | 0.25% / 1.10% | -0.02% | 5.0% / 2.3% | 7.2 |"
    assert rows[3].split(" | ")[5:7] == ["+0.06%", "— (no attention)"]


def test_make_gallery_writes_every_figure(tmp_path):
    root = make_mixed_boundary_dataset(tmp_path / "data", n_train=8, n_val=4, size=64, seed=5, progress=False)
    runs = {}
    for variant in ("baseline", "ran"):
        runs[variant] = fit(TrainConfig(variant=variant, dataset="voc", data_root=str(root), crop_size=32,
                                        batch_size=2, iterations=2, checkpoint_every=2, eval_every=0, num_workers=0,
                                        device="cpu", eval_batch_size=2, run_dir=str(tmp_path / variant)))
    gallery = load_script("make_gallery")
    out = tmp_path / "gallery"
    assert gallery.main(["--baseline", str(runs["baseline"]), "--ran", str(runs["ran"]), "--out", str(out),
                         "--search", "4", "--regions", "2", "--crop-size", "24"]) == 0
    expected = {"branches", "comparison", "attention", "trimap", "mixed_trimap", "iou", "confusion",
                "training_curves"}
    assert {p.stem for p in out.glob("*.png")} == expected
    stats = json.loads((out / "attention.json").read_text())
    assert stats["mixed boundary"]["pixels"] > 0 and stats["rest"]["pixels"] > 0
