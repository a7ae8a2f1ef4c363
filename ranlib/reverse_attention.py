"""The reverse branch's NEG block and the reverse-attention branch (the paper's Formula 1).

- ``neg``: the reverse branch's output is ``reverse = NEG(CONV_rev(f)) = -CONV_rev(f)``. CONV_rev learns
  "what is not class c" responses; NEG flips them so that ``reverse`` can be supervised with the ordinary
  labels.
- ``reverse_attention``: where the original branch is confident about class c the attention is small, and
  where it is unsure (low or negative scores, typically at mixed boundaries) the attention is large:
  ``"sigmoid"``: ``A = sigmoid(-original)`` (Formula 1, the default);
  ``"normalized"``: ``A = sigmoid(1 / (relu(original) + 0.125) - 4)``, which equals sigmoid(4) ~ 0.98 for
  every non-positive score and decays towards sigmoid(-4) ~ 0.02 as the score grows.
"""

from __future__ import annotations

import torch

from ranlib.model_config import ATTENTIONS, check_choice


def neg(x: torch.Tensor) -> torch.Tensor:
    """NEG block: elementwise negation."""
    return -x


def reverse_attention(original: torch.Tensor, form: str = "sigmoid") -> torch.Tensor:
    """Attention map in [0, 1] from the original branch's class scores, same shape as ``original``."""
    check_choice("attention", form, ATTENTIONS)
    if form == "sigmoid":
        return torch.sigmoid(neg(original))
    return torch.sigmoid(1.0 / (torch.relu(original) + 0.125) - 4.0)  # normalized
