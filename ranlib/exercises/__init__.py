"""Checks for the course's exercises: ``check_xxx(student_function)`` probes the student's code on several
inputs (edge cases included), compares it with ranlib's reference and reports the first discrepancy in one or
two lines, naming the likely mistake; a stub that still raises ``NotImplementedError`` gets "not done yet".

One module per notebook: ``bands`` (01), ``original_branch`` (02), ``reverse_branch`` (03), ``attention`` (04),
``fusion_and_losses`` (05), ``training`` (06), ``evaluation`` and ``step_size`` (07), ``visualising`` (08),
``homework`` (09).
"""

from ranlib.exercises._check import ExerciseError, NotDoneError
from ranlib.exercises.attention import check_fuse, check_normalized_attention, check_reverse_attention
from ranlib.exercises.bands import check_bands
from ranlib.exercises.evaluation import check_band_miou, check_iou
from ranlib.exercises.fusion_and_losses import check_ran, check_ran_loss
from ranlib.exercises.homework import check_backbone_and_ran, check_band_miou_curve
from ranlib.exercises.original_branch import check_conv_org, check_deeplab, check_dilated_conv1d
from ranlib.exercises.reverse_branch import check_reverse_branch
from ranlib.exercises.step_size import (
    check_control_prediction,
    check_differences,
    check_loss_gradients,
    check_step_control,
)
from ranlib.exercises.training import check_param_groups, check_poly
from ranlib.exercises.visualising import (
    check_confusion,
    check_flip_reasons,
    check_fusion_effect,
    check_fusion_flips,
    check_fusion_prediction,
    fusion_effect,
)

__all__ = [
    "ExerciseError", "NotDoneError",
    "check_bands",  # 01
    "check_dilated_conv1d", "check_conv_org", "check_deeplab",  # 02
    "check_reverse_branch",  # 03
    "check_reverse_attention", "check_normalized_attention", "check_fuse",  # 04
    "check_ran", "check_ran_loss",  # 05
    "check_param_groups", "check_poly",  # 06
    "check_iou", "check_band_miou", "check_loss_gradients", "check_step_control", "check_control_prediction",
    "check_differences",  # 07
    "check_confusion", "check_fusion_effect", "check_fusion_prediction", "fusion_effect", "check_fusion_flips",
    "check_flip_reasons",  # 08
    "check_backbone_and_ran", "check_band_miou_curve",  # 09
]
