"""The scripts behind the README's tables and figures, run end to end on tiny inputs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from ranlib.data import make_mixed_boundary_dataset
from ranlib.engine.train import TrainConfig, fit

SCRIPTS = Path(__file__).parent.parent / "scripts"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_ablation_tunes_on_val_and_reports_test_with_paired_intervals(tmp_path, capsys):
    ablation = load_script("ablation")

    def run(arm, lr, seed, val, test, update=1.0):
        directory = ablation.Run(arm, lr, seed).directory(tmp_path)
        directory.mkdir(parents=True)
        (directory / "metrics.json").write_text(json.dumps({"miou": val / 100}))
        (directory / "test_metrics.json").write_text(json.dumps({"miou": test, "boundary": test / 2,
                                                                 "mixed": test / 4}))
        (directory / "log.csv").write_text(f"iteration,grad_f_total,backbone_update\n10,1.0,{update}\n20,,\n")

    # the grid on seed 0: validation mIoU picks 3e-3 for the baseline, 1e-3 for subtract and RAN; the test
    # numbers of the grid runs that lose are never read
    for variant, vals in {"baseline": (30, 35), "subtract": (20, 10), "ran": (40, 38)}.items():
        for lr, val in zip((1e-3, 3e-3), vals, strict=True):
            run(variant, lr, 0, val, test=99.0 if (variant, lr) in {("baseline", 1e-3), ("ran", 3e-3)} else 0.0)
    chosen = {"baseline": 3e-3, "subtract": 1e-3, "ran": 1e-3, "baseline-step": 3e-3, "ran-mean": 1e-3}
    tests = {"baseline": (30, 40), "subtract": (20, 20), "ran": (36, 44), "baseline-step": (32, 40),
             "ran-mean": (30, 39)}
    for arm, values in tests.items():
        for seed, value in enumerate(values):
            path = ablation.Run(arm, chosen[arm], seed).directory(tmp_path)
            if path.exists():
                (path / "test_metrics.json").write_text(json.dumps({"miou": value, "boundary": value / 2,
                                                                   "mixed": value / 4}))
                (path / "log.csv").write_text("iteration,grad_f_total,backbone_update\n10,1.0,1.0\n")
            else:
                run(arm, chosen[arm], seed, val=0, test=value, update=3.0 if arm == "baseline-step" else 1.0)
    results = tmp_path / "results.md"
    results.write_text("# Results\n\nintro\n\n<!-- ablation:begin -->\nold table\n<!-- ablation:end -->\n\nafter\n")
    assert ablation.main(["--seeds", "0", "1", "--tune-seeds", "0", "--lrs", "1e-3", "3e-3", "--runs", str(tmp_path),
                          "--no-train", "--write-results", str(results)]) == 0
    out = capsys.readouterr().out
    tuning = [line for line in out.splitlines() if line.startswith("| `baseline` |")][0]
    assert tuning == "| `baseline` | 30.0 | **35.0** | 0.003 |"  # the tuning table comes first
    compare = [line for line in out.splitlines() if line.startswith("| `ran` | 0.001 / 0.01")]
    # RAN - baseline on the test split: 6 and 4, mean 5, sd sqrt(2); t(0.975, 1) = 12.706 -> 5 -+ 12.7
    assert compare and "| 40.0 ± 5.7 | 20.0 ± 2.8 | 10.0 ± 1.4 | +5.0 [-7.7, +17.7] | +1.2 [-1.9, +4.4] | 1.00× |" \
        in compare[0]
    step = [line for line in out.splitlines() if line.startswith("| `baseline-step`")][0]
    assert step.startswith("| `baseline-step` | 0.009 / 0.03 |") and step.endswith("| 3.00× |")
    text = results.read_text()
    assert "old table" not in text and text.startswith("# Results\n\nintro") and text.endswith("after\n")
    assert "+5.0 [-7.7, +17.7]" in text and "python scripts/ablation.py --seeds 0 1" in text
    with pytest.raises(SystemExit, match="metrics.json is missing"):
        ablation.main(["--seeds", "7", "--runs", str(tmp_path), "--no-train", "--lrs", "1e-3", "3e-3"])


def test_ablation_attention_forms_measured_step_factor_and_mirror_control(tmp_path, capsys):
    """--attentions adds tuned RAN arms per form; --step-factor measured sets k from the grid's backbone steps;
    ran-step is RAN with only its backbone's lr divided by k; each arm is paired with baseline-step."""
    ablation = load_script("ablation")

    def run(arm, lr, seed, val=0.0, test=0.0, update=1.0, factor=3.0):
        directory = ablation.Run(arm, lr, seed, factor).directory(tmp_path)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "metrics.json").write_text(json.dumps({"miou": val / 100}))
        (directory / "test_metrics.json").write_text(json.dumps({"miou": test, "boundary": test / 2,
                                                                 "mixed": test / 4}))
        (directory / "log.csv").write_text(f"iteration,grad_f_total,backbone_update\n10,1.0,{update}\n")
        return directory

    # grid, seed 0: baseline picks 3e-3, subtract and RAN 1e-3, centered RAN 3e-3. RAN's step at its lr is 2.5,
    # the baseline's at its lr 1.0: k = 2.5 / 1.0 = 2.5
    for arm, vals in {"baseline": (30, 35), "subtract": (20, 10), "ran": (40, 38), "ran-centered": (41, 45)}.items():
        for lr, val in zip((1e-3, 3e-3), vals, strict=True):
            run(arm, lr, 0, val, update=2.5 if (arm, lr) == ("ran", 1e-3) else 1.0)
    tests = {("baseline", 3e-3): (30, 40), ("subtract", 1e-3): (20, 20), ("ran", 1e-3): (36, 44),
             ("ran-centered", 3e-3): (38, 46), ("baseline-step", 3e-3): (34, 40), ("ran-step", 1e-3): (30, 42)}
    for (arm, lr), values in tests.items():
        for seed, value in enumerate(values):
            factor = 2.5 if arm in ("baseline-step", "ran-step") else 3.0
            metrics = ablation.Run(arm, lr, seed, factor).directory(tmp_path) / "metrics.json"
            grid_val = 100 * json.loads(metrics.read_text())["miou"] if metrics.exists() else 0.0  # seed 0: a grid run
            run(arm, lr, seed, grid_val, value, update=2.5 if (arm, seed) == ("ran", 0) else 1.0, factor=factor)
    assert ablation.Run("ran-step", 1e-3, 0, 2.5).directory(tmp_path).name == "ran-step-x2.5-lr0.001-seed0"
    assert ablation.Run("ran-step", 1e-3, 0, 2.5).flags() == ["--variant", "ran", "--seed", "0", "--lr", "0.0004",
                                                              "--head-lr-mult", "25"]  # heads: 0.0004 * 25 = 0.01
    assert ablation.Run("baseline-step", 3e-3, 1, 2.5).flags()[-4:] == ["--lr", "0.0075", "--head-lr-mult", "4"]
    assert ablation.Run("ran-centered", 3e-3, 0).flags()[-2:] == ["--attention", "centered"]
    results = tmp_path / "results.md"
    argv = ["--seeds", "0", "1", "--lrs", "1e-3", "3e-3", "--runs", str(tmp_path), "--no-train", "--attentions",
            "sigmoid", "centered", "--step-factor", "measured", "--controls", "baseline-step", "ran-step"]
    assert ablation.main([*argv, "--write-results", str(results), "--section", "attention-scratch"]) == 0
    out = capsys.readouterr().out
    assert "| `ran-centered` | 41.0 | **45.0** | 0.003 |" in out
    assert "| `ran-step` | 0.0004 / 0.01 |" in out and "| `baseline-step` | 0.0075 / 0.03 |" in out
    assert "k: measured" in out and "= 2.5" in out
    # against baseline-step: RAN 36-34, 44-40 -> mean 3, sd sqrt(2), t(0.975, 1) = 12.706 -> 3 -+ 12.7;
    # centered RAN 38-34, 46-40 -> 5 -+ 12.7; its seed sd: |46-38| / sqrt(2) = 5.7
    assert "| `ran` | 2 | +3.0 [-9.7, +15.7] |" in out
    assert "| `ran-centered` | 2 | +5.0 [-7.7, +17.7] | +1.2 [-1.9, +4.4] | 5.7 | 38.0 – 46.0 |" in out
    text = results.read_text()
    assert "## When the attention acts: ResNet-18 from scratch" in text and "<!-- attention-scratch:end -->" in text
    # a runs folder of one regime refuses a sweep of the other
    (ablation.Run("baseline", 1e-3, 0).directory(tmp_path) / "config.json").write_text(
        json.dumps({"backbone": "resnet18", "weights_backbone": None}))
    with pytest.raises(SystemExit, match="its own --runs folder"):
        ablation.main([*argv, "--backbone", "efficientnet_lite0", "--weights-backbone", "IMAGENET1K"])


@pytest.mark.slow
def test_ablation_sweep_trains_scores_and_writes_results_end_to_end(tmp_path):
    """The whole sweep in a tiny configuration (the tiny backbone): each run a real ``python -m ranlib train``, the
    test split evaluated, the tables written between the markers."""
    root = make_mixed_boundary_dataset(tmp_path / "data", n_train=4, n_val=2, n_test=2, size=32, seed=5,
                                       progress=False)
    ablation = load_script("ablation")
    tiny = (f"--dataset voc --data-root {root} --train-split train --iterations 2 --crop-size 32 --batch-size 2 "
            "--eval-every 0 --checkpoint-every 2 --eval-batch-size 2 --workers 0 --log-every 1")
    results = tmp_path / "results.md"
    assert ablation.main(["--seeds", "0", "--lrs", "1e-3", "--runs", str(tmp_path / "runs"), "--train-args", tiny,
                          "--write-results", str(results), "--plot", str(tmp_path / "steps.png"),
                          "--backbone", "tiny"]) == 0
    assert (tmp_path / "steps.png").stat().st_size > 10_000
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["baseline-lr0.001-seed0", "baseline-step-lr0.001-seed0", "ran-lr0.001-seed0",
                    "ran-mean-lr0.001-seed0", "subtract-lr0.001-seed0"]
    config = json.loads((tmp_path / "runs" / "ran-mean-lr0.001-seed0" / "config.json").read_text())
    assert config["loss_weights"] == pytest.approx([1 / 3] * 3)
    step = json.loads((tmp_path / "runs" / "baseline-step-lr0.001-seed0" / "config.json").read_text())
    assert (step["lr"], step["head_lr_mult"]) == pytest.approx((0.003, 10 / 3), rel=1e-5)  # flags print 6 digits
    section = results.read_text()
    assert "<!-- ablation:begin -->" in section and "| `ran-mean` | 0.001 / 0.01 |" in section


def test_instruments_table_from_hand_made_values():
    from ranlib.seed_tables import instruments_table

    ran = {"original_miou": 47.74, "fused_miou": 47.66, "original_mixed": 25.1, "fused_mixed": 25.0, "changed": 0.254,
           "changed_mixed": 1.1, "net": -0.0234, "open_mixed": 5.0, "open_rest": 2.3, "original_mean": 7.24}
    subtract = ran | {"open_mixed": float("nan"), "open_rest": float("nan"), "net": 0.061}
    rows = instruments_table([("ran", 0, ran), ("subtract", 1, subtract)]).splitlines()
    assert rows[2] == "| `ran` | 0 | 47.7 / 47.7 | 25.1 / 25.0 | 0.25% / 1.10% | -0.02% | 5.0% / 2.3% | 7.2 |"
    assert rows[3].split(" | ")[5:7] == ["+0.06%", "— (no attention)"]


def test_make_gallery_writes_every_figure(tmp_path, no_run_plots):
    root = make_mixed_boundary_dataset(tmp_path / "data", n_train=8, n_val=4, size=64, seed=5, progress=False)
    runs = {}
    for variant in ("baseline", "ran"):
        runs[variant] = fit(TrainConfig(variant=variant, dataset="voc", data_root=str(root), crop_size=32,
                                        train_split="train", head_dilation=0, backbone="tiny",
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


def finished_run(directory: Path, miou: float, images_per_s: float = 20.0) -> None:
    """A run directory as ``fit`` leaves it, as far as ``read_scores`` reads it: metrics.json and log.csv."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "metrics.json").write_text(json.dumps({"miou": miou, "boundary_miou": {"4": miou / 2},
                                                        "mixed_miou": {"4": miou / 4}}))
    (directory / "log.csv").write_text(f"iteration,images_per_s\n10,{images_per_s}\n")


def test_sweep_trains_only_the_unfinished_runs_and_reads_every_one(tmp_path, monkeypatch, capsys):
    """``seed_tables.sweep``, the loop of measure_head_fov and measure_pretrained: the main job with each arm's
    fields, each seed in RUNS/ARM-seedSEED; fit only where metrics.json is missing; train=False leaves those out."""
    from ranlib import seed_tables

    trained = []

    def fake_fit(config):
        trained.append((Path(config.run_dir).name, config.variant, config.seed))
        finished_run(Path(config.run_dir), 0.5)
    monkeypatch.setattr(seed_tables, "fit", fake_fit)
    finished_run(tmp_path / "a-seed0", 0.4, images_per_s=30.0)
    arms = {"a": {}, "b": {"variant": "baseline"}}
    read = seed_tables.sweep(arms, [0, 1], tmp_path, train=False)
    assert [(r.arm, r.seed, r.wall_s) for r in read] == [("a", 0, None)] and trained == []
    assert read[0].scores == {"miou": 40.0, "boundary": 20.0, "mixed": 10.0, "images_per_s": 30.0}
    assert capsys.readouterr().out.count("left out") == 3
    runs = seed_tables.sweep(arms, [0, 1], tmp_path)
    assert trained == [("a-seed1", "ran", 1), ("b-seed0", "baseline", 0), ("b-seed1", "baseline", 1)]
    assert [(r.arm, r.seed, r.wall_s is None) for r in runs] == [("a", 0, True), ("a", 1, False), ("b", 0, False),
                                                                  ("b", 1, False)]
    assert [r.scores["miou"] for r in runs] == [40.0, 50.0, 50.0, 50.0]
    assert runs[2].config.variant == "baseline" and runs[2].config.run_dir == str(tmp_path / "b-seed0")
    assert capsys.readouterr().out.count(" s wall (") == 3


def test_pretrained_and_head_fov_tables_from_finished_runs(tmp_path, capsys):
    """Both scripts read finished runs through the sweep without training: one table row per run."""
    for arm, seed, miou in (("resnet18-ran", 0, 0.4), ("resnet18-ran", 1, 0.5), ("d0-crop64", 0, 0.3)):
        finished_run(tmp_path / f"{arm}-seed{seed}", miou)
    pretrained = load_script("measure_pretrained")
    assert pretrained.main(["--arms", "resnet18-ran", "effnet-scratch-ran", "--seeds", "0", "1", "--runs",
                            str(tmp_path), "--no-speed", "--no-train"]) == 0
    out = capsys.readouterr().out
    assert "| `resnet18-ran` | 1 | 50.0 | 25.0 | 12.5 | 20 |" in out
    assert "effnet-scratch-ran seed 0: no finished run" in out
    assert "| `resnet18-ran` | 45.0 ± 7.1 (40.0 / 50.0) |" in out
    head_fov = load_script("measure_head_fov")
    assert head_fov.main(["--arms", "d0-crop64", "--runs", str(tmp_path)]) == 0
    assert "| `d0-crop64` | 0 | 0 px | 30.0 | 15.0 | 7.5 | 20 |  |" in capsys.readouterr().out
