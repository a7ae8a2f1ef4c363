"""The course's three modes: what each one trains (``MODES``), the variants and controls it runs, and how the mode
is chosen: ``RANLIB_MODE`` or ``RANLIB_QUICK=1`` (``ranlib.settings``), else the hardware."""

from __future__ import annotations

import torch

from ranlib import settings
from ranlib.engine.config import TrainConfig
from ranlib.model_config import VARIANTS as MODEL_VARIANTS
from ranlib.settings import MODE_NAMES

VARIANTS = tuple(reversed(MODEL_VARIANTS))  # the course's order, from the baseline up to RAN
# The two step-size controls of notebook 07 (as in scripts/ablation.py): the baseline with its backbone's lr x
# STEP_FACTOR and its heads' unchanged, and RAN with its three losses averaged instead of summed.
CONTROLS = ("baseline-step", "ran-mean")
STEP_FACTOR = 3.0
SEED = 0

# One configuration per mode. data_root, run_dir, variant and amp are filled in by ``ranlib.course.configs``.
MODES = {
    # The embedded dataset; evaluated on its first 50 validation scenes (split val_quick, written by data_root).
    # The main job's optimisation, shortened: the smallest of four measured recipes whose three models each predict
    # every class, score every class above 0 and show the course's problem (object IoU in mixed-boundary bands
    # below interiors); scripts/measure_course_models.py, tests/test_course_models.py. A 1x1 head, because 64 px
    # crops give an 8x8 feature map: a dilated head would train as 1x1 and evaluate with untrained taps.
    # Evaluated at iterations 100, 200 and 300 (50 scenes each, a few seconds), so notebook 08 can draw how the
    # attention opens or closes during the student's own training (ranlib.viz.plot_attention_over_training).
    "quick": TrainConfig.for_dataset("mixed_boundary", backbone="resnet18", val_split="val_quick", crop_size=64,
                                     batch_size=8, iterations=300, lr=1e-3, head_lr_mult=10.0, head_dilation=0,
                                     eval_every=100, checkpoint_every=100, log_every=10, num_workers=0, amp="off",
                                     seed=SEED),
    # A T4 (65 TFLOPS fp16 dense peak) at an assumed 8-15 % utilisation runs 5.2-9.8 TFLOP/s; one step of
    # RAN-ResNet-50 on 10 crops of 321 px counts 2.52 TFLOP (forward and backward), so 3,000 steps take
    # 13-24 min, plus two evaluations on VOC val (1,449 images, about 0.22 PFLOP each): 14-26 min per variant.
    # Checkpoints every 1,000 steps, only the newest kept: Drive holds one resumable file (~200 MB) per run.
    # VOC's preset (ranlib.engine.config.PRESETS) gives train_aug, 321-px crops in batches of 10, the dilation-12
    # head and evaluation one image at a time; num_workers=None takes loader workers from os.cpu_count() (2 on a
    # 2-vCPU, 15 GB Colab runtime), which keeps the GPU fed without swapping.
    "colab": TrainConfig.for_dataset("voc", backbone="resnet50", weights_backbone="IMAGENET1K_V1", iterations=3000,
                                     lr=2.5e-4, freeze_bn=True, checkpoint_every=1000, keep_checkpoints=1,
                                     eval_every=1500, log_every=20, num_workers=None, seed=SEED),
    # DeepLab-v2 / RAN: ImageNet ResNet-101, 20k iterations of 10 crops of 321 px, lr 2.5e-4, frozen BN.
    "paper": TrainConfig.for_dataset("voc", backbone="resnet101", weights_backbone="IMAGENET1K_V1",
                                     iterations=20_000, lr=2.5e-4, freeze_bn=True, checkpoint_every=1000,
                                     keep_checkpoints=1, eval_every=5000, log_every=50, num_workers=None, seed=SEED),
}
assert tuple(MODES) == MODE_NAMES
# Notebook 01 looks at one baseline before the course has explained RAN: in colab/paper mode a short preview
# run on VOC train (no SBD needed), never the long one. In quick mode the preview is the quick run itself.
PREVIEW_ITERATIONS = 300


def detect_mode(environ: dict | None = None, cuda: bool | None = None) -> str:
    """``$RANLIB_MODE`` if set, quick under ``RANLIB_QUICK=1``, else colab with CUDA and quick without."""
    asked = settings.requested_mode(environ)
    if asked:
        return asked[0]
    return "colab" if (torch.cuda.is_available() if cuda is None else cuda) else "quick"


def device() -> torch.device:
    """The device the course trains on: the GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
