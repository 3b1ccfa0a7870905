"""What a classifier is trained and judged for: the privacy task's two kinds (and the action's one).

A `Task` says how a model's logits meet its labels, so the engine, Algorithm 1 and the two-fold
evaluation never branch on the kind of task themselves:

- `MULTICLASS`: one class per clip (the action; SBU's actor pair). Cross-entropy, judged by
  top-1 accuracy; chance is 1/K.
- `MULTILABEL`: a set of attributes per item (VISPR's privacy attributes, multi-hot float labels
  `[N, K]`). Binary cross-entropy on sigmoid outputs (Orekondy et al., as Wu et al. section 4.2),
  judged by class-based mean average precision (cMAP: the average precision of each attribute,
  averaged over the attributes present in the split); chance is the attributes' mean prevalence,
  which is what a scorer that knows nothing reaches in expectation.

The data choose the task (`task_of`): int labels `[N]` are multi-class, float labels `[N, K]`
multi-label. `privacy_losses` are the privacy terms L_B of `raypriv.method.losses` that fit it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels)


def _binary_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def top1_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose largest logit is the label (0 for no rows)."""
    correct = int((logits.argmax(1) == labels.to(logits.device)).sum())
    return correct / max(1, len(labels))


def class_mean_average_precision(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """cMAP: scikit-learn's average precision of every attribute with at least one positive in
    `labels`, averaged; NaN when no attribute has a positive (nothing to rank)."""
    from sklearn.metrics import average_precision_score

    truth = labels.detach().cpu().numpy() > 0.5
    scores = logits.detach().float().cpu().numpy()
    present = truth.any(axis=0)
    if not present.any():
        return math.nan
    return float(average_precision_score(truth[:, present], scores[:, present], average="macro"))


def _chance_multiclass(labels: torch.Tensor, num_classes: int) -> float:
    return 1 / num_classes


def mean_prevalence(labels: torch.Tensor, num_classes: int = 0) -> float:
    """The chance level of cMAP: each present attribute's share of positives, averaged."""
    prevalence = (labels > 0.5).float().mean(0)
    present = prevalence > 0
    return float(prevalence[present].mean()) if present.any() else math.nan


def _num_classes_multiclass(labels: torch.Tensor) -> int:
    return 1 + int(labels.max())


def _num_classes_multilabel(labels: torch.Tensor) -> int:
    return int(labels.shape[1])


@dataclass(frozen=True)
class Task:
    """How logits meet labels for one kind of classification."""

    name: str  # "multiclass" | "multilabel"
    metric: str  # what `score` measures: "accuracy" | "cmap" (metrics.json `privacy_metric`)
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # the training loss of logits vs labels
    score: Callable[[torch.Tensor, torch.Tensor], float]  # over a whole split's (or batch's) logits
    chance: Callable[[torch.Tensor, int], float]  # of (test labels, classes)
    num_classes: Callable[[torch.Tensor], int]  # the outputs a model needs for these labels
    privacy_losses: tuple[str, ...]  # the L_B of raypriv.method.losses that fit this task


MULTICLASS = Task("multiclass", "accuracy", _cross_entropy, top1_accuracy, _chance_multiclass,
                  _num_classes_multiclass, ("neg_entropy", "uniform_ce"))
MULTILABEL = Task("multilabel", "cmap", _binary_cross_entropy, class_mean_average_precision, mean_prevalence,
                  _num_classes_multilabel, ("neg_binary_entropy", "prior_binary_kl"))
TASKS = {task.name: task for task in (MULTICLASS, MULTILABEL)}


def task_of(labels: torch.Tensor) -> Task:
    """The task these labels pose: class indices `[N]` are multi-class, multi-hot `[N, K]` multi-label."""
    if labels.dim() == 1 and not labels.is_floating_point():
        return MULTICLASS
    if labels.dim() == 2:
        return MULTILABEL
    raise ValueError(f"labels of shape {tuple(labels.shape)} and dtype {labels.dtype} are neither class "
                     "indices [N] nor multi-hot attributes [N, K]")
