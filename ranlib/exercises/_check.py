"""The machinery every exercise check shares: one short message instead of a traceback wall.

A check calls the student's function through ``call`` (a stub that raises ``NotImplementedError`` becomes
"not done yet"), compares with ranlib's reference through ``compare`` (which also tries the plausible wrong
answers it is given and names the one that matches) and ends with ``passed`` ("✓ ..."). A failure raises
``ExerciseError``, an ``AssertionError`` whose ``_render_traceback_`` makes IPython and Jupyter show only its
one or two lines, prefixed by "✗".
"""

from __future__ import annotations

from collections.abc import Callable
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


# Substrings of PyTorch error messages and what they usually mean in these exercises.
_ERROR_HINTS = (
    ("Kernel size can't be greater than actual input size",
     "the convolution shrinks the map: with dilation d a 3x3 kernel needs padding d"),
    ("out of bounds", "a label outside [0, K): is the ignore index 255 passed to cross_entropy (ignore_index=255)?"),
    ("does not require grad", "a result was detached from the graph: no .detach(), .item(), numpy or torch.no_grad()"),
    ("size of tensor a", "two tensors of different shapes were combined: check which dimension you upsample or reduce"),
    ("NoneType", "something is None: a bias=False layer, a missing return, or a branch this variant does not have"),
)


def call(fn: Callable, *args: Any, name: str, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``; a ``NotImplementedError`` means "not done yet", other errors become one line."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise NotDoneError(f"not done yet: write {name} in the cell above, then run this check again") from None
    except ExerciseError:
        raise
    except Exception as error:  # the student's code crashed: say where and, when we can, why
        text = str(error).strip().splitlines()[0] if str(error).strip() else ""
        hint = next((h for key, h in _ERROR_HINTS if key in str(error)), None)
        message = f"{name} raised {type(error).__name__}: {text[:200]}"
        raise ExerciseError(message + (f"\n  likely: {hint}" if hint else "")) from None


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
        fail(f"{name}: expected {describe(reference)}, got {describe(ours)}")
    if ours.shape != reference.shape:
        for mistake, value in (wrong or {}).items():
            if isinstance(value, torch.Tensor) and value.shape == ours.shape and close(ours, value, rtol, atol):
                fail(f"{name}: shape {tuple(reference.shape)} expected, got {tuple(ours.shape)}\n  likely: {mistake}")
        fail(f"{name}: shape {tuple(reference.shape)} expected, got {tuple(ours.shape)}")
    if dtype and ours.dtype != reference.dtype:
        fail(f"{name}: dtype {reference.dtype} expected, got {ours.dtype}")
    if close(ours, reference, rtol, atol):
        return
    for mistake, value in (wrong or {}).items():
        if isinstance(value, torch.Tensor) and close(ours, value, rtol, atol):
            fail(f"{name} differs from ranlib's{_first_difference(ours, reference)}\n  likely: {mistake}")
    fail(f"{name} differs from ranlib's{_first_difference(ours, reference)}")


def check_unchanged(name: str, given: torch.Tensor, original: torch.Tensor) -> None:
    """Fail if the student's function modified its input in place."""
    if not torch.equal(given, original):
        fail(f"{name} changed its input in place (e.g. relu_(), add_(), x[...] = ...): compute a new tensor instead")


def check_gradient(name: str, output: torch.Tensor, inputs: torch.Tensor, what: str) -> None:
    """Fail unless gradients flow from ``output`` back to ``inputs`` (the result was not detached)."""
    if not isinstance(output, torch.Tensor) or output.grad_fn is None:
        fail(f"{name}: {what} is detached from the graph (no gradient reaches its input): drop .detach(), "
             ".data, numpy() or torch.no_grad()")
    (grad,) = torch.autograd.grad(output.sum(), inputs, allow_unused=True, retain_graph=True)
    if grad is None or not grad.abs().sum() > 0:
        fail(f"{name}: no gradient reaches the input through {what}: it is detached or constant")
