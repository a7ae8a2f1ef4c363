"""Notebook 06's exercises: the two SGD parameter groups and the poly learning-rate schedule.

- ``check_param_groups(my_param_groups)``: against ``ranlib.engine.train.build_optimizer`` on a RAN and a baseline,
  with a head multiplier other than 10.
- ``check_poly(my_poly)``: against ``ranlib.engine.train.poly_lr_factor`` at every iteration, for two lengths and two
  powers.
"""

from __future__ import annotations

import torch

import ranlib
from ranlib.engine.train import poly_lr_factor
from ranlib.exercises._check import ExerciseError, call, describe, fail, guarded, likely, number, passed, student


@guarded
def check_param_groups(fn) -> None:
    """Check ``fn(model, lr, head_lr_mult) -> [{"params": backbone, "lr": lr}, {"params": heads, "lr": mult * lr}]``."""
    name = "my_param_groups"
    for variant, lr, mult in (("ran", 0.01, 10.0), ("baseline", 2.5e-4, 4.0)):
        torch.manual_seed(0)
        model = ranlib.build_model(backbone="resnet18", variant=variant, num_classes=5)
        where = f"{variant} model, lr {lr}, head_lr_mult {mult}"
        try:
            groups = call(fn, model, lr, mult, name=name)
        except ExerciseError as error:
            if variant == "baseline" and "'nonetype' object has no attribute" in str(error).lower():
                fail(f"{name} ({where}) raised AttributeError on None: the baseline has no CONV_rev "
                     "(model.conv_rev is None)\n  likely: the heads listed by hand: model.head_parameters() "
                     "gives the heads the model has")
            raise
        if not isinstance(groups, (list, tuple)) or not all(isinstance(g, dict) for g in groups):
            fail(f"{name} ({where}): a list of dicts {{'params': ..., 'lr': ...}} expected, got {describe(groups)}")
        if len(groups) != 2:
            fail(f"{name} ({where}): 2 groups expected (backbone, heads), got {len(groups)}"
                 + likely("all parameters in one group: the backbone's at lr, both heads' at head_lr_mult x lr"
                          if len(groups) == 1 else None))
        backbone = {id(p) for p in model.backbone_parameters()}
        heads = {id(p) for p in model.head_parameters()}
        org = {id(p) for p in model.conv_org.parameters()}
        for g in groups:
            if "params" not in g or "lr" not in g:
                fail(f"{name} ({where}): every group needs 'params' and 'lr', got keys {sorted(map(str, g))}")
        with student(f"{name} (reading its groups' params)"):
            params = [[g["params"]] if isinstance(g["params"], torch.Tensor) else list(g["params"]) for g in groups]
        got = [{id(p) for p in ps} for ps in params]
        lrs = [number(f"{name} ({where}): 'lr'", g["lr"]) for g in groups]
        if got[0] & got[1]:
            fail(f"{name} ({where}): {len(got[0] & got[1])} parameters are in both groups: each parameter in one "
                 "group only\n  likely: model.parameters() in a group: backbone_parameters() and head_parameters()")
        if got == [heads, backbone]:
            fail(f"{name} ({where}): the groups are in the other order: backbone first, then the heads")
        if got[0] != backbone:
            fail(f"{name} ({where}): the first group should hold the {len(backbone)} backbone parameters, it holds "
                 f"{len(got[0])}" + (": all parameters in one group" if len(got[0]) == len(backbone | heads) else ""))
        if got[1] != heads:
            hint = (": CONV_rev's parameters are missing (model.head_parameters() has both heads)"
                    if got[1] == org and heads != org else
                    ": only CONV_rev's parameters (model.head_parameters() has both heads)"
                    if got[1] == heads - org and heads != org else "")
            fail(f"{name} ({where}): the second group should hold the {len(heads)} head parameters, it holds "
                 f"{len(got[1])}{hint}")
        _check_lrs(f"{name} ({where})", lrs, lr, mult)
    passed(f"{name}: backbone at lr, both heads at head_lr_mult x lr, as ranlib.engine.train.build_optimizer")


def _check_lrs(where: str, lrs: list[float], lr: float, mult: float) -> None:
    """The backbone's group at ``lr``, the heads' at ``mult`` x ``lr``; a wrong pair named by how it came about."""
    expected = [lr, lr * mult]
    if all(abs(a - b) <= 1e-12 * max(1.0, b) for a, b in zip(lrs, expected, strict=False)):
        return
    backbone, heads = lrs
    cases = (
        (abs(backbone - lr * mult) < 1e-12 and abs(heads - lr) < 1e-12,
         "learning rates swapped: the backbone at lr, the heads at head_lr_mult x lr"),
        (abs(heads - lr) < 1e-12, f"the heads' lr is {heads}, expected {lr * mult}: multiply by head_lr_mult"),
        (abs(heads - lr / mult) < 1e-12,
         f"the heads' lr is lr / head_lr_mult = {heads}, expected {lr * mult}: multiply"),
        (abs(backbone - lr) > 1e-12 and abs(heads - lr * mult) < 1e-12,
         f"the backbone's lr is {backbone}, expected {lr}: the backbone trains at the base lr"),
        (abs(heads - mult) < 1e-12 and abs(backbone - lr) < 1e-12,
         f"the heads' lr is {heads} = head_lr_mult itself, expected {lr * mult}: multiply it by lr"),
        (abs(heads - 10 * lr) < 1e-12,
         f"the heads' lr is 10 x lr = {heads}, expected {lr * mult}: use the head_lr_mult argument, not a fixed 10"),
    )
    fail(f"{where}: " + next((message for wrong, message in cases if wrong), f"learning rates {expected} expected, "
                             f"got {lrs}"))


@guarded
def _poly_mistakes(t: int, iterations: int, power: float) -> dict[str, float | None]:
    frac = t / iterations
    return {
        "1 - (t/T)^p: the power applies to (1 - t/T)": 1 - frac ** power,
        "the power is missing: (1 - t/T) ** power": 1 - frac,
        "off by one: the first iteration (t = 0) must give factor 1": (1 - (t + 1) / iterations) ** power
        if t + 1 <= iterations else None,
        "T - 1 in the denominator: divide by the number of iterations T": (1 - t / (iterations - 1)) ** power
        if t <= iterations - 1 else None,
        "integer division t // T: use t / T": (1 - t // iterations) ** power,
        "the power argument is ignored (fixed 0.9)": (1 - frac) ** 0.9,
        "* instead of **: the factor is (1 - t/T) ** power": (1 - frac) * power,
        "the factor grows: (1 - t/T) ** power, not (t/T) ** power": frac ** power,
        "base and exponent swapped: (1 - t/T) ** power": power ** (1 - frac),
    }


def _value(name: str, value) -> complex:
    """A number (a negative base to a fractional power gives a complex one, which is wrong but nameable)."""
    return value if isinstance(value, complex) else complex(number(name, value))


@guarded
def check_poly(fn) -> None:
    """Check ``fn(iteration, iterations, power) -> (1 - iteration / iterations) ** power``.

    The whole schedule is read first, so that the likely mistake is the one that matches at every iteration.
    """
    name = "my_poly"
    for iterations, power in ((100, 0.9), (7, 2.0)):
        values = [_value(name, call(fn, t, iterations, power, name=name)) for t in range(iterations + 1)]
        wrong = [t for t, v in enumerate(values) if abs(v - poly_lr_factor(t, iterations, power)) > 1e-9]
        if not wrong:
            continue
        candidates = [_poly_mistakes(t, iterations, power) for t in range(iterations + 1)]
        mistake = next((m for m in candidates[0]
                        if all(c[m] is None or abs(v - c[m]) < 1e-9 for c, v in zip(candidates, values, strict=True))),
                       None)
        t = wrong[0]
        got = f"{values[t].real:.6f}" if values[t].imag == 0 else f"{values[t]:.4g} (a complex number: a negative base)"
        fail(f"{name}: at t = {t} of T = {iterations}, power {power}: expected "
             f"{poly_lr_factor(t, iterations, power):.6f}, got {got}"
             + likely(mistake))
    passed(f"{name}: (1 - t/T)^p at every t for T = 100, p = 0.9 and T = 7, p = 2, as "
           "ranlib.engine.train.poly_lr_factor")
