"""Losses of Algorithm 1 (Wu et al., appendix A), as pure functions of logits.

f_d's objective per batch is `L_T + γ · max_i L_B(f_b^i(f_d(X))) + α · ‖f_d(X) − X‖₁`, where
`L_B` rewards the budget models' uncertainty. The max over the M budget models picks the *most
confident* one (the one whose L_B is largest), so each step suppresses the currently most
dangerous budget model.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F


def negative_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Σ_k p_k log p_k per sample (`[B]`); 0 for a one-hot prediction, −log K for a uniform one."""
    log_p = F.log_softmax(logits, dim=-1)
    return (log_p.exp() * log_p).sum(-1)


def uniform_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against the uniform label per sample (`[B]`): the original code's variant.

    Minimised (value log K) exactly where the prediction is uniform, like the negative entropy,
    but its gradient does not vanish at confident predictions.
    """
    return -F.log_softmax(logits, dim=-1).mean(-1)


# The privacy losses by the names the run config uses (`raypriv.method.config.PrivacyLoss`).
LOSSES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "neg_entropy": negative_entropy,
    "uniform_ce": uniform_cross_entropy,
}


def privacy_loss(budget_logits: Sequence[torch.Tensor], kind: str = "neg_entropy") -> tuple[torch.Tensor, int]:
    """`max_i L_B(f_b^i)` over the ensemble, batch-averaged, and the index i of that model."""
    if kind not in LOSSES:
        raise ValueError(f"unknown privacy loss {kind!r}; choose one of {', '.join(LOSSES)}")
    per_model = torch.stack([LOSSES[kind](logits).mean() for logits in budget_logits])
    index = int(per_model.argmax())
    return per_model[index], index
