"""The machinery every exercise check shares: one short message instead of a traceback wall.

A check calls the student's function through ``call`` (a stub that raises ``NotImplementedError`` becomes
"not done yet"), compares with ranlib's reference through ``compare`` (which also tries the plausible wrong
answers it is given and names the one that matches) and ends with ``passed`` ("✓ ..."). A failure raises
``ExerciseError``, an ``AssertionError`` whose ``_render_traceback_`` makes IPython and Jupyter show only its
one or two lines, prefixed by "✗".
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch


class ExerciseError(AssertionError):
    """A check found a discrepancy; the message says what was expected, what came back and the likely mistake."""

    def _render_traceback_(self) -> list[str]:  # IPython shows these lines instead of a traceback
        lines = str(self).splitlines() or [""]
        return ["✗ " + lines[0], *("  " + line for line in lines[1:])]


class NotDoneError(ExerciseError):
    """The student's cell still holds its ``raise NotImplementedError`` stub."""


def fail(message: str) -> None:
    """Stop the check with ``message`` (no chained traceback)."""
    raise ExerciseError(message) from None


def passed(message: str) -> None:
    """Print the one-line success message."""
    print("✓ " + message)


# Substrings of PyTorch error messages (lower case) and what they usually mean in these exercises; first match wins.
_ERROR_HINTS = (
    ("kernel size can't be greater than actual input size",
     "the convolution shrinks the map: with dilation d a 3x3 kernel needs padding d"),
    ("unsupported operand type(s) for -: 'int' and 'str'",
     "padding given as a string where a number is needed: padding=dilation (an int)"),
    ("padding size should be less than", "reflect or replicate padding needs a padding smaller than the map: "
     "DeepLab pads with zeros (padding_mode='zeros', the default)"),
    ("invalid padding string", "padding as a string: only 'same' or 'valid'; DeepLab's is padding=dilation"),
    ("modified by an inplace operation", "an in-place operation (relu_(), add_(), +=, x[...] = ...) overwrote a "
     "tensor autograd needs: compute a new tensor instead"),
    ("leaf variable", "an in-place operation on a tensor that requires grad: compute a new tensor instead"),
    ("in-place", "an in-place operation: compute a new tensor instead"),
    ("does not require grad", "a result was detached from the graph: no .detach(), .item(), numpy or torch.no_grad()"),
    ("target 255 is out of bounds", "the void label 255 reached cross_entropy: pass ignore_index=255 (the "
     "ignore_index argument)"),
    ("out of bounds for dimension", "one possible cause: a fixed size (21 classes, range(21)) where the input has "
     "fewer entries: take the sizes from the input (C.shape[0], num_classes)"),
    ("out of bounds", "one possible cause: a label outside [0, K), such as the void label 255, used as an index"),
    ("is invalid for input of size", "one possible cause: a label >= K reached ConfusionMatrix.update: a fixed "
     "class count, or prediction and ground truth swapped (update(prediction, target, mask=band))"),
    ("appears to not have been used in the graph", "one possible cause: a gradient with respect to a tensor this "
     "loss does not depend on (a head's weight?): differentiate with respect to f = model.backbone(images)"),
    ("received an invalid combination of arguments", "an argument of the wrong type: a float where PyTorch wants "
     "an int (12, not 12.0 or 96 / 16: use //), or the arguments in the wrong order"),
    ("'float' object cannot be interpreted as an integer", "a float where PyTorch wants an int: use // or int(...)"),
    ("must be tuple of ints", "a float where PyTorch wants an int: use // or int(...)"),
    ("expected scalar type", "a dtype mismatch: labels must be int64 (long), scores float32"),
    ("expected both vectors to have same dtype", "a dtype mismatch: mix float32 with float32 (.float())"),
    ("same dtype", "a dtype mismatch: convert with .float() or .long() where the tensors meet"),
    ("input type", "a dtype or device mismatch between the input and the layer's weights"),
    ("channels, but got", "the layer's in_channels differ from the features' channels: nn.Conv2d(in_channels, "
     "num_classes, ...) in that order, with the in_channels argument, not a fixed number"),
    ("size mismatch (got input", "cross_entropy needs logits (B, K, H, W) and labels (B, H, W) of the same H x W: "
     "upsample the logits to target.shape[-2:] ((H, W), in that order)"),
    ("input and target batch or spatial sizes don't match", "cross_entropy needs logits (B, K, H, W) and labels "
     "(B, H, W) of the same H x W: upsample the logits to target.shape[-2:] ((H, W), in that order)"),
    ("the shape of the mask", "one possible cause: a prediction and a mask of different sizes: predict "
     "full-resolution scores (predict_logits upsamples them to the image) before comparing with the mask"),
    ("input and output must have the same number of spatial dimensions", "one possible cause: F.interpolate "
     "without the batch dimension: it takes (N, C, h, w), so interpolate logits[None] and take [0] after"),
    ("size of tensor a", "two tensors of different shapes were combined: check which dimension you upsample or reduce"),
    ("shapes cannot be multiplied", "a matrix product of mismatched shapes: this exercise is elementwise"),
    ("positional argument", "the function's arguments differ from the exercise's: keep the stub's def line"),
    ("unexpected keyword argument", "the function's arguments differ from the exercise's: keep the stub's def line"),
    ("must be tensor, not", "a non-tensor passed where a tensor is expected: arguments in the wrong order?"),
    ("boolean value of tensor", "a tensor in an if, and, or: use torch.where, & and |"),
    ("nonetype", "something is None: a bias=False layer, a missing return, or a branch this variant does not have"),
    ("dimension out of range", "one possible cause: a dimension the input does not have: the classes are "
     "dimension 1 of (B, K, H, W), dimension 0 of (K, H, W)"),
)


def _hint(error: BaseException) -> str | None:
    text = str(error).lower()
    return next((hint for key, hint in _ERROR_HINTS if key in text), None)


def likely(hint: str | None) -> str:
    """The second line of a message, naming the mistake: "likely: ..." for a hint that holds for every answer that
    shows the symptom, as it stands for one that says "one possible cause: ..." (a guess among several causes);
    "" without a hint."""
    if not hint:
        return ""
    return "\n  " + (hint if hint.startswith("one possible cause") else f"likely: {hint}")


def error_line(error: BaseException, length: int, hint: str | None = None) -> str:
    """What a crash says in one line, "ValueError: <its first line, cut to ``length``>", and the likely cause on a
    second (``hint``, else the one ``_ERROR_HINTS`` gives)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text[:length]}" + likely(hint or _hint(error))


@contextmanager
def adding_cause(cause: str) -> Iterator[None]:
    """Give a failure that names no cause of its own ``cause`` ("one possible cause: ...") as its second line."""
    try:
        yield
    except ExerciseError as error:
        if "likely" in str(error) or "one possible cause" in str(error):
            raise
        fail(str(error) + likely(cause))


@contextmanager
def student(name: str) -> Iterator[None]:
    """Run the student's code: ``NotImplementedError`` means "not done yet", any other error becomes one line."""
    try:
        yield
    except NotImplementedError:
        raise NotDoneError(f"not done yet: write {name} in the cell above, then run this check again") from None
    except ExerciseError:
        raise
    except Exception as error:  # the student's code crashed: say where and, when we can, why
        raise ExerciseError(f"{name} raised {error_line(error, 200)}") from None


def call(fn: Callable, *args: Any, name: str, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` inside ``student(name)``."""
    with student(name):
        return fn(*args, **kwargs)


BUG = "the check itself failed (a bug in ranlib, not in your answer; please report it)"


def guarded(check: Callable) -> Callable:
    """Make ``check`` raise nothing but ``ExerciseError``: an unexpected exception becomes one line naming it."""

    @functools.wraps(check)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return check(*args, **kwargs)
        except ExerciseError:
            raise
        except NotImplementedError:
            raise NotDoneError("not done yet: finish the cell above, then run this check again") from None
        except Exception as error:
            raise ExerciseError(f"{check.__name__}: {BUG}: {error_line(error, 160)}") from None

    return wrapper


def number(name: str, value: Any) -> float:
    """``value`` as a float (a Python number or a one-element tensor), or a one-line failure."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if value is ...:
        raise NotDoneError(f"not done yet: {name} is still the placeholder ...: set it in the cell above") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(f"{name}: a number expected, got {describe(value)}")
    return float(value)


def describe(x: Any) -> str:
    """'a tensor of shape (2, 3) float32', or the type for anything else."""
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)} {str(x.dtype).replace('torch.', '')}"
    return f"a {type(x).__name__}"


def _first_difference(ours: torch.Tensor, reference: torch.Tensor) -> str:
    diff = (ours.double() - reference.double()).abs().nan_to_num(float("inf"))
    index = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape)) if diff.dim() else ()
    where = f" at index {index}" if index else ""
    return (f"{where}: expected {reference[index].item():.4g}, got {ours[index].item():.4g} "
            f"(max difference {diff.max().item():.3g})")


def close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    """Same shape and values within tolerance (NaN equal to NaN)."""
    return (isinstance(a, torch.Tensor) and a.shape == b.shape
            and torch.allclose(a.double(), b.double(), rtol=rtol, atol=atol, equal_nan=True))


def compare(name: str, ours: Any, reference: torch.Tensor, wrong: dict[str, torch.Tensor] | None = None,
            rtol: float = 1e-4, atol: float = 1e-5, dtype: bool = False) -> None:
    """Fail unless ``ours`` equals ``reference``; name the mistake when ``ours`` matches one of ``wrong``.

    ``wrong`` maps a description of a plausible mistake ("looks like sigmoid(x) instead of sigmoid(-x)") to
    what that mistake returns on the same input. Shape and type are checked first.
    """
    if not isinstance(ours, torch.Tensor):
        hint = (".item(), float() or numpy turned the tensor into a number: return the tensor (later cells "
                "backpropagate through it)" if isinstance(ours, (int, float)) or type(ours).__module__ == "numpy"
                else "a missing return" if ours is None else None)
        fail(f"{name}: expected {describe(reference)}, got {describe(ours)}" + likely(hint))
    if ours.shape != reference.shape:
        for mistake, value in (wrong or {}).items():
            if isinstance(value, torch.Tensor) and value.shape == ours.shape and close(ours, value, rtol, atol):
                fail(f"{name}: shape {tuple(reference.shape)} expected, got {tuple(ours.shape)}" + likely(mistake))
        fail(f"{name}: shape {tuple(reference.shape)} expected, got {tuple(ours.shape)}")
    if dtype and ours.dtype != reference.dtype:
        fail(f"{name}: dtype {reference.dtype} expected, got {ours.dtype}")
    if close(ours, reference, rtol, atol):
        return
    for mistake, value in (wrong or {}).items():
        if isinstance(value, torch.Tensor) and close(ours, value, rtol, atol):
            fail(f"{name} differs from ranlib's{_first_difference(ours, reference)}" + likely(mistake))
    fail(f"{name} differs from ranlib's{_first_difference(ours, reference)}")


def check_unchanged(name: str, given: torch.Tensor, original: torch.Tensor) -> None:
    """Fail if the student's function modified its input in place."""
    if not torch.equal(given, original):
        fail(f"{name} changed its input in place (e.g. relu_(), add_(), x[...] = ...): compute a new tensor instead")


def check_gradient(name: str, output: Any, inputs: torch.Tensor, what: str) -> None:
    """Fail unless gradients flow from ``output`` back to ``inputs`` (the result was not detached)."""
    if not isinstance(output, torch.Tensor) or output.grad_fn is None:
        fail(f"{name}: {what} is detached from the graph (no gradient reaches its input): drop .detach(), "
             ".data, numpy() or torch.no_grad()\n  likely: a .detach() or torch.no_grad(); the training cells "
             "need gradients through it")
    with student(f"{name} (gradient of {what})"):
        (grad,) = torch.autograd.grad(output.double().sum(), inputs, allow_unused=True, retain_graph=True)
    if grad is None or not grad.abs().sum() > 0:
        fail(f"{name}: no gradient reaches the input through {what}: it is detached or constant\n  likely: a "
             ".detach(), .data or a constant (torch.no_grad(), a new tensor) between the input and the result")
