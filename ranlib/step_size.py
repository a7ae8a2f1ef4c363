"""How large a step each loss term gives the shared backbone: the confound of any RAN-versus-baseline comparison.

RAN trains with ``CE(original) + CE(reverse) + CE(fused)``; the baseline with ``CE(fused)`` alone. All of RAN's
terms backpropagate through the same backbone features ``f``, so under one learning rate RAN's backbone takes a
larger step than the baseline's. These functions measure that step:

- ``feature_gradients`` / ``feature_gradient_norms``: the gradient that each (weighted) loss term, and their sum,
  sends into ``f``, and its L2 norm (``torch.autograd.grad`` of each term with respect to ``f``, the graph kept for
  the real backward);
- ``backbone_gradient_norms``: the same for one batch, from a model and labels (a forward pass of its own);
- ``update_norm``: the L2 norm of what one optimiser step changed in a list of parameters.

``ranlib.engine.train`` logs the first and the last at every log step (``grad_f_*`` and ``backbone_update`` in
``log.csv``); notebook 07's exercise computes the second by hand.
"""

from __future__ import annotations

import torch

from ranlib.losses import RANLoss


def feature_gradients(parts: dict[str, torch.Tensor], weights: dict[str, float],
                      features: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{term: d(weight * loss_term)/d features, ..., "total": their sum}``, each shaped like ``features``.

    ``parts`` are the unweighted loss terms (``RANLoss``'s second output), ``weights`` their weights (terms
    missing from it count 1), ``features`` the tensor the terms were computed from (the backbone's output). The
    graph is kept, so a ``backward()`` of the same loss can follow.
    """
    grads = {}
    for name, loss in parts.items():
        (grad,) = torch.autograd.grad(weights.get(name, 1.0) * loss, features, retain_graph=True)
        grads[name] = grad.float()
    grads["total"] = sum(grads.values())  # the terms' gradients add before the step
    return grads


def feature_gradient_norms(parts: dict[str, torch.Tensor], weights: dict[str, float],
                           features: torch.Tensor) -> dict[str, float]:
    """``{term: ||d(weight * loss_term)/d features||_2, ..., "total": ||d(sum)/d features||_2}``: the L2 norms of
    ``feature_gradients``."""
    return {name: grad.norm().item() for name, grad in feature_gradients(parts, weights, features).items()}


def backbone_gradient_norms(model, images: torch.Tensor, masks: torch.Tensor,
                            criterion: RANLoss | None = None) -> dict[str, float]:
    """``feature_gradient_norms`` of one batch: ``model`` (a ``RAN``, in the mode it is in) on ``images``
    (B, 3, H, W) against ``masks`` (B, H, W), with ``criterion`` (default: ``RANLoss()``, three weights of 1).
    No parameter's ``.grad`` is touched."""
    criterion = RANLoss() if criterion is None else criterion
    features = model.backbone(images)  # (B, C, h, w)
    _, parts = criterion(model.classify(features), masks)
    return feature_gradient_norms(parts, criterion.weights, features)


def update_norm(before: list[torch.Tensor], params: list[torch.Tensor]) -> float:
    """The L2 norm of ``params - before`` over all tensors: how far one optimiser step moved them."""
    squares = [(p.detach().float() - b.float()).pow(2).sum() for b, p in zip(before, params, strict=True)]
    return torch.stack(squares).sum().sqrt().item() if squares else 0.0
