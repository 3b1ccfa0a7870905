"""The typed search space as Optuna distributions, and the samplers a sweep can use.

A space is static (a dict of distributions, never a define-by-run function), so sampling does no
computation and every sampled point is a valid run config (`raypriv.method.config.apply_params`).
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from raypriv.sweep.config import CategoricalParam, FloatParam, IntParam, OptionsParam


def to_optuna(space: dict[str, Any]) -> dict[str, BaseDistribution]:
    """Space name -> Optuna distribution; an options parameter samples the name of one choice."""
    out: dict[str, BaseDistribution] = {}
    for name, param in space.items():
        if isinstance(param, FloatParam):
            out[name] = FloatDistribution(param.low, param.high, log=param.log, step=param.step)
        elif isinstance(param, IntParam):
            out[name] = IntDistribution(param.low, param.high, log=param.log, step=param.step)
        elif isinstance(param, CategoricalParam):
            out[name] = CategoricalDistribution(param.choices)
        elif isinstance(param, OptionsParam):
            out[name] = CategoricalDistribution(tuple(param.choices))
        else:  # pragma: no cover - the schema admits nothing else
            raise TypeError(f"unknown space parameter {param!r}")
    return out


def make_sampler(name: str, *, seed: int, trials: int, concurrency: int = 1) -> optuna.samplers.BaseSampler:
    """The multi-objective sampler: "tpe" (default), "nsga2" or "random", seeded.

    Sweeps are short, so TPE's random start-up is max(concurrency, trials // 3) trials (at most
    Optuna's default 10) instead of always 10, and NSGA-II's population is trials // 4 (4..50).
    """
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(concurrency, trials // 3, 1)))
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=min(50, max(4, trials // 4)))
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}; choose one of tpe, nsga2, random")


def study_trials(storage_url: str, study_name: str) -> list | None:
    """The trials of an Optuna study, or None when there is no such study (a missing sqlite file included)."""
    from pathlib import Path

    if storage_url.startswith("sqlite:///") and not Path(storage_url[len("sqlite:///"):]).exists():
        return None
    try:
        study = optuna.load_study(study_name=study_name, storage=storage_url)
    except KeyError:
        return None
    return study.get_trials(deepcopy=False)


def study_attrs(storage_url: str, prefix: str) -> dict[str, dict]:
    """User attributes of every study in `storage_url` whose name starts with `prefix`, by study name."""
    from pathlib import Path

    if storage_url.startswith("sqlite:///") and not Path(storage_url[len("sqlite:///"):]).exists():
        return {}
    return {s.study_name: s.user_attrs for s in optuna.get_all_study_summaries(storage_url, include_best_trial=False)
            if s.study_name.startswith(prefix)}
