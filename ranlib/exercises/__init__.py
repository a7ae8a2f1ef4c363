"""Checks for the course's exercises: ``check_xxx(student_function)`` probes the student's code on several
inputs (edge cases included), compares it with ranlib's reference and reports the first discrepancy in one or
two lines, naming the likely mistake; a stub that still raises ``NotImplementedError`` gets "not done yet".

One module per notebook, or per part of one: ``bands`` (01), ``original_branch`` (02), ``reverse_branch`` (03),
``attention`` (04), ``fusion_and_losses`` and ``ran_loss`` (05), ``training`` (06), ``evaluation``, ``step_size``
and ``controls`` (07), ``visualising`` and ``fusion_flips`` (08), ``homework`` (09); ``heads`` holds what the
classifier-head checks share, ``_check`` the messages.
"""

from ranlib.exercises._check import ExerciseError, NotDoneError
from ranlib.exercises.attention import check_fuse, check_normalized_attention, check_reverse_attention
from ranlib.exercises.bands import check_bands
from ranlib.exercises.controls import check_control_prediction, check_differences
from ranlib.exercises.evaluation import check_band_miou, check_iou
from ranlib.exercises.fusion_and_losses import check_ran
from ranlib.exercises.fusion_flips import check_flip_reasons, check_fusion_flips
from ranlib.exercises.homework import check_backbone_and_ran, check_band_miou_curve
from ranlib.exercises.original_branch import check_conv_org, check_deeplab, check_dilated_conv1d
from ranlib.exercises.ran_loss import check_ran_loss
from ranlib.exercises.reverse_branch import check_reverse_branch
from ranlib.exercises.step_size import check_loss_gradients, check_step_control
from ranlib.exercises.training import check_param_groups, check_poly
from ranlib.exercises.visualising import check_confusion, check_fusion_effect, check_fusion_prediction, fusion_effect

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
