"""Losses of Algorithm 1 (Wu et al., appendix A), as pure functions of logits.

f_d's objective per batch is `(1/k) Σ_j [L_T + γ · max_i L_B(f_b^i(f_d(X_j))) + α · ‖f_d(X_j) − X_j‖₁]`,
where `L_B` rewards the budget models' uncertainty. The max over the M budget models picks the
*most confident* one (the one whose L_B is largest): per sample, as Algorithm 1 writes it, so each
clip suppresses the model that is surest about that clip; or, with `ensemble="batch"`, one model
for the whole batch (the largest batch-mean L_B).

Multi-label budget models (VISPR's privacy attributes, section 4.2) predict each attribute with
its own sigmoid; their L_B is the multi-label analogue of the negative entropy: the negative
binary entropy of every attribute, averaged over the attributes (`negative_binary_entropy`). Its
least value is a coin flip on every attribute, which for a rare attribute is a *miscalibrated*
prediction, not an uninformed one: `prior_binary_kl` instead measures how far the prediction is from
the attributes' training prevalence (the KL divergence of the predicted Bernoulli from the prior
one), least where the budget model predicts what it would knowing nothing about the image.
Which L_B fits which privacy task is `raypriv.method.tasks.Task.privacy_losses`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import math

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


def negative_binary_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Σ_k [p_k log p_k + (1 − p_k) log(1 − p_k)] / K per sample (`[B]`), p_k = σ(z_k): 0 when every
    attribute is predicted with certainty, −log 2 when every one is a coin flip."""
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    return (log_p.exp() * log_p + log_not_p.exp() * log_not_p).mean(-1)


def prior_binary_kl(logits: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """Σ_k KL(Bernoulli(p_k) ‖ Bernoulli(π_k)) / K per sample (`[B]`), p_k = σ(z_k), π = `prior`
    (`[K]`, each attribute's prevalence): 0 when every attribute is predicted at its prevalence."""
    prior = prior.to(logits).clamp(1e-4, 1 - 1e-4)
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = log_p.exp()
    return (p * (log_p - prior.log()) + (1 - p) * (log_not_p - (-prior).log1p())).mean(-1)


# The privacy losses by the names the run config uses (`raypriv.method.config.PrivacyLoss`).
LOSSES: dict[str, Callable[..., torch.Tensor]] = {  # logits (and a prior: NEEDS_PRIOR)
    "neg_entropy": negative_entropy,
    "uniform_ce": uniform_cross_entropy,
    "neg_binary_entropy": negative_binary_entropy,
    "prior_binary_kl": prior_binary_kl,
}
NEEDS_PRIOR = frozenset({"prior_binary_kl"})  # their second argument: the labels' prevalence

# The least each L_B can be, at the most uncertain prediction over `classes` outputs.
_FLOORS: dict[str, Callable[[int], float]] = {
    "neg_entropy": lambda classes: -math.log(classes),
    "uniform_ce": lambda classes: math.log(classes),
    "neg_binary_entropy": lambda classes: -math.log(2),
    "prior_binary_kl": lambda classes: 0.0,
}


def privacy_floor(kind: str, classes: int) -> float:
    """The least L_B `kind` can be for a budget model of `classes` outputs (a uniform prediction)."""
    return _FLOORS[kind](classes)


def privacy_loss(budget_logits: Sequence[torch.Tensor], kind: str = "neg_entropy", ensemble: str = "sample",
                 choose: Callable[[torch.Tensor], int] | None = None,
                 prior: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """The batch mean of `max_i L_B(f_b^i)` over the ensemble, and the model chosen most often.

    ensemble: "sample" takes the max per clip (Algorithm 1); "batch" takes the model with the
        largest batch-mean L_B for every clip.
    choose: picks the model from the per-model batch means in "batch" mode (default: argmax); a
        data-parallel caller passes one that first averages the means over its ranks.
    prior: each label's training prevalence, for the losses in `NEEDS_PRIOR`.
    """
    if kind not in LOSSES:
        raise ValueError(f"unknown privacy loss {kind!r}; choose one of {', '.join(LOSSES)}")
    if kind in NEEDS_PRIOR and prior is None:
        raise ValueError(f"privacy loss {kind!r} needs the labels' prevalence (prior)")
    args = (prior,) if kind in NEEDS_PRIOR else ()
    per_clip = torch.stack([LOSSES[kind](logits, *args) for logits in budget_logits])  # [M, B]
    if ensemble == "sample":
        values, chosen = per_clip.max(0)
        return values.mean(), int(torch.bincount(chosen, minlength=len(budget_logits)).argmax())
    if ensemble != "batch":
        raise ValueError(f"unknown ensemble max {ensemble!r}; choose sample or batch")
    per_model = per_clip.mean(1)
    index = choose(per_model.detach()) if choose is not None else int(per_model.argmax())
    return per_model[index], index
