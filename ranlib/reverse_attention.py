"""The reverse branch's NEG block and the reverse-attention branch (the paper's Formula 1, and one gate of ours).

- ``neg``: the reverse branch's output is ``reverse = NEG(CONV_rev(f)) = -CONV_rev(f)``. CONV_rev learns
  "what is not class c" responses; NEG flips them so that ``reverse`` can be supervised with the ordinary
  labels.
- ``reverse_attention``: where the original branch is confident about class c the attention is small, and
  where it is unsure (low or negative scores, typically at mixed boundaries) the attention is large. Forms:

  ``"sigmoid"`` (the paper's Formula 1, the default): ``A = sigmoid(-original)``;
  ``"normalized"`` (the paper's normalised form): ``A = sigmoid(1 / (relu(original) + 0.125) - 4)``, which equals
  sigmoid(4) ~ 0.98 for every non-positive score and decays towards sigmoid(-4) ~ 0.02 as the score grows;
  ``"centered"`` (OURS, NOT in the paper): ``A = sigmoid(-(original - mean_k original))``, the mean taken over the
  K classes at each pixel.

Why a form of ours: both paper forms read one raw score on its own, so they depend on the offset that all K
scores of a pixel share, an offset the softmax (and hence the cross-entropy) ignores. Nothing in training keeps
that offset near 0; when the scores drift positive, ``sigmoid(-original)`` shuts everywhere and the reverse branch
cannot act (notebook 04 teaches this; docs/results.md measures it). ``"centered"`` subtracts the pixel's mean score
first, so adding a constant to every class at a pixel leaves it unchanged: it opens (A > 0.5) exactly at the
classes scored below that pixel's average, whatever the offset. It is the course's question, not the paper's
method: results with it are ours to measure (``scripts/ablation.py --attentions``).
"""

from __future__ import annotations

import torch

from ranlib.model_config import ATTENTIONS, check_choice


def neg(x: torch.Tensor) -> torch.Tensor:
    """NEG block: elementwise negation."""
    return -x


def reverse_attention(original: torch.Tensor, form: str = "sigmoid") -> torch.Tensor:
    """Attention map in [0, 1] from the original branch's class scores, same shape as ``original``.

    ``form``: ``"sigmoid"`` and ``"normalized"`` are the paper's, elementwise, any shape. ``"centered"`` is ours
    (not the paper's): ``sigmoid(-(original - original.mean(dim=1)))``, the classes along dim 1 as in ``(B, K, H,
    W)`` or ``(B, K)``; unlike the paper's forms it does not change when a constant is added to all K scores of a
    pixel (the offset the softmax ignores).
    """
    check_choice("attention", form, ATTENTIONS)
    if form == "sigmoid":
        return torch.sigmoid(neg(original))
    if form == "normalized":
        return torch.sigmoid(1.0 / (torch.relu(original) + 0.125) - 4.0)
    if original.dim() < 2:  # centered: needs the class dimension
        raise ValueError(f'attention="centered" averages over the classes on dim 1; got a tensor of shape '
                         f"{tuple(original.shape)}: pass (B, K, H, W) or (B, K) scores")
    return torch.sigmoid(neg(original - original.mean(dim=1, keepdim=True)))  # (B, K, ...) - (B, 1, ...)
