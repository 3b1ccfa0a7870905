"""Pareto selection over two-fold results: A_T (action accuracy, higher is better) against A_B^N
(the best fresh attacker's identity accuracy, lower is better). Plain numpy, no plotting.

A point is on the front when no other point is at least as good on both axes and strictly better
on one. Exact duplicates do not dominate each other, so tied front points are all kept; a
duplicate of a dominated point is dominated too. NaN results (a trial that never finished its
evaluation) are never on the front and dominate nothing.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def pareto_mask(target_acc: Sequence[float], privacy_acc: Sequence[float]) -> np.ndarray:
    """Boolean mask of the points on the front of (A_T ↑, A_B^N ↓)."""
    t = np.asarray(target_acc, dtype=float)
    p = np.asarray(privacy_acc, dtype=float)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"need two 1-D sequences of equal length, got shapes {t.shape} and {p.shape}")
    valid = ~(np.isnan(t) | np.isnan(p))
    # dominates[j, i]: point j is at least as good as point i on both axes and better on one.
    no_worse = (t[:, None] >= t[None, :]) & (p[:, None] <= p[None, :])
    better = (t[:, None] > t[None, :]) | (p[:, None] < p[None, :])
    dominates = no_worse & better & valid[:, None]
    return valid & ~dominates.any(axis=0)


def hypervolume(target_acc: Sequence[float], privacy_acc: Sequence[float], *, reference: tuple[float, float] = (0.0, 1.0)) -> float:
    """Area dominated by the points, bounded by `reference` = (worst A_T, worst A_B^N).

    With accuracies in [0, 1] and the default reference (A_T 0, A_B^N 1) it is in [0, 1]: 1 would be
    a degrader with A_T = 100 % and A_B^N = 0 %. Points no better than the reference add nothing.
    """
    t = np.asarray(target_acc, dtype=float)
    p = np.asarray(privacy_acc, dtype=float)
    t_ref, p_ref = reference
    keep = pareto_mask(t, p) & (t > t_ref) & (p < p_ref)
    if not keep.any():
        return 0.0
    order = np.argsort(p[keep], kind="stable")  # ascending A_B^N: on the front A_T then ascends too
    p_front, t_front = p[keep][order], t[keep][order]
    widths = np.diff(np.append(p_front, p_ref))
    return float(np.sum(widths * (t_front - t_ref)))


def hypervolume_history(target_acc: Sequence[float], privacy_acc: Sequence[float], **kwargs) -> np.ndarray:
    """Hypervolume of the first k points, for k = 1..n (points in trial order)."""
    t = np.asarray(target_acc, dtype=float)
    p = np.asarray(privacy_acc, dtype=float)
    return np.array([hypervolume(t[: k + 1], p[: k + 1], **kwargs) for k in range(len(t))])
