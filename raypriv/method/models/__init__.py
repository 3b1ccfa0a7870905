"""Model registries for the three roles of Wu et al.'s framework, and the one factory over them.

- `DEGRADERS` (f_d): per-frame image transformers, clips `[B, C, T, H, W]` -> degraded clips.
- `TARGETS` (f_T): video classifiers of the action, `[B, C, T, H, W] -> [B, num_classes]`.
- `BUDGETS` (f_b): per-frame image classifiers of identity, logits averaged over frames; the
  same zoo supplies the attackers of the evaluation, kept apart from the budget models by family.

Importing this package registers every entry, including the tiny ones the tests use.
"""

from __future__ import annotations

import random
from typing import Any

import torch.nn as nn

from raypriv.method.models import budget as _budget
from raypriv.method.models import degrader as _degrader
from raypriv.method.models import target as _target
from raypriv.method.models.registry import ModelSpec, Registry

DEGRADERS = Registry("degrader")
TARGETS = Registry("target")
BUDGETS = Registry("budget")
REGISTRIES: dict[str, Registry] = {"degrader": DEGRADERS, "target": TARGETS, "budget": BUDGETS}

_degrader.register(DEGRADERS)
_target.register(TARGETS)
_budget.register(BUDGETS)


def _registry(role: str) -> Registry:
    try:
        return REGISTRIES[role]
    except KeyError:
        raise ValueError(f"unknown model role {role!r}; allowed roles: {', '.join(REGISTRIES)}") from None


def create_model(role: str, name: str, **kwargs: Any) -> nn.Module:
    """Build the `role` model registered as `name`; `kwargs` override the entry's defaults.

    Targets and budgets need `num_classes`; every role takes `in_channels`.
    """
    return _registry(role).build(name, **kwargs)


def list_models(
    role: str | None = None, pattern: str = "*", *, family: str | None = None, include_tiny: bool = True
) -> list[ModelSpec]:
    """Specs matching the glob `pattern` (and `family`), for one role or all, sorted by role then name."""
    roles = list(REGISTRIES) if role is None else [role]
    return [
        _registry(r).spec(name)
        for r in roles
        for name in _registry(r).names(pattern, family=family, include_tiny=include_tiny)
    ]


def budget_model_names(budget) -> list[str]:
    """The M budget-model names of a `BudgetConfig`: `models` cycled, or sampled with `seed` from `families`."""
    if budget.policy == "cycle":
        return [budget.models[i % len(budget.models)] for i in range(budget.count)]
    pool = sorted(name for family in budget.families for name in BUDGETS.names(family=family, include_tiny=False))
    pool = pool or sorted(name for family in budget.families for name in BUDGETS.names(family=family))
    rng = random.Random(budget.seed)
    # Every architecture once before any repeats, so M >= pool size uses the whole pool.
    names: list[str] = []
    while len(names) < budget.count:
        names += rng.sample(pool, min(len(pool), budget.count - len(names)))
    return names


def families_of(names) -> set[str]:
    """The registry families of budget-model names: the one rule for "which families did the budget use"."""
    return {BUDGETS.spec(name).family for name in names}


def count_parameters(module: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameter elements in `module` (only those with `requires_grad` if asked)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


__all__ = [
    "BUDGETS",
    "DEGRADERS",
    "REGISTRIES",
    "TARGETS",
    "ModelSpec",
    "budget_model_names",
    "families_of",
    "count_parameters",
    "create_model",
    "list_models",
]
