"""Replicates and paired comparisons: one run proves nothing here, so every trade-off claim is a
mean ± std over seeds beside its paired control (`raypriv compare`, the confirmed sweep front).

Plain numpy and scipy; the same functions summarise a comparison's `runs.csv` and render the
result tables from `results/*.csv` (bench/tables.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

OBJECTIVES = ("target_acc", "target_acc_fresh", "privacy_acc")


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """(mean, sample standard deviation); std is NaN for fewer than two values, both NaN for none."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of the differences a_i - b_i and its two-sided t-interval: (mean, low, high).

    The interval is NaN with fewer than two pairs (no spread to estimate).
    """
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return math.nan, math.nan, math.nan
    mean = float(d.mean())
    if len(d) < 2:
        return mean, math.nan, math.nan
    from scipy.stats import t

    half = float(t.ppf(0.5 + confidence / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
    return mean, mean - half, mean + half


@dataclass(frozen=True)
class ArmSummary:
    """One arm over its seeds: n, mean and std of each objective, and its paired difference to the
    reference arm (the first one) on the seeds both ran on the same machine: (mean, 95 % low, 95 % high)."""

    arm: str
    n: int
    seeds: tuple[int, ...]
    mean: dict[str, float]
    std: dict[str, float]
    diff: dict[str, tuple[float, float, float]]
    paired_seeds: tuple[int, ...] = ()  # the seeds `diff` is taken over


def _pair_key(row: Mapping) -> tuple[int, str]:
    """What pairs two runs: the seed, and the machine where rows name one (the same seed on another
    CPU takes other float paths and reads differently, so such runs are not a pair)."""
    return int(row["seed"]), str(row.get("machine", ""))


def summarise(rows: Sequence[Mapping], arms: Sequence[str], objectives: Sequence[str] = OBJECTIVES) -> list[ArmSummary]:
    """Per arm, in `arms` order, from rows with `arm`, `seed` (and optionally `machine`) and the
    objectives (fractions); differences are paired on the seed and the machine."""
    by_arm = {arm: {_pair_key(r): r for r in rows if r["arm"] == arm} for arm in arms}
    reference = by_arm[arms[0]] if arms else {}
    out = []
    for arm in arms:
        runs = by_arm[arm]
        common = sorted(set(runs) & set(reference))
        stats = {k: mean_std(float(r[k]) for r in runs.values()) for k in objectives}
        out.append(ArmSummary(
            arm=arm, n=len(runs), seeds=tuple(sorted(seed for seed, _ in runs)),
            mean={k: s[0] for k, s in stats.items()}, std={k: s[1] for k, s in stats.items()},
            diff={k: paired_difference([float(runs[s][k]) for s in common], [float(reference[s][k]) for s in common])
                  for k in objectives},
            paired_seeds=tuple(seed for seed, _ in common),
        ))
    return out
