"""Pareto selection over two-fold results: A_T (action accuracy, higher is better) against A_B^N
(the best fresh attacker's identity accuracy, lower is better). Plain numpy, no plotting.

A point is on the front when no other point is at least as good on both axes and strictly better
on one. Exact duplicates do not dominate each other, so tied front points are all kept; a
duplicate of a dominated point is dominated too. NaN results (a trial that never finished its
evaluation) are never on the front and dominate nothing.

A sweep's confirmation stage re-runs the K best screening configurations (`select_best`:
non-dominated sorting, crowding distance within a rank) and marks the knee of the confirmed front
(`knee_index`).
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


# --- Choosing which screening configurations to confirm ---------------------------------------------

def nondominated_ranks(target_acc: Sequence[float], privacy_acc: Sequence[float]) -> np.ndarray:
    """Non-dominated sorting (NSGA-II's): rank 0 is the front, rank 1 the front of what is left
    without it, and so on; a NaN point gets rank n (after every valid point)."""
    t = np.asarray(target_acc, dtype=float)
    p = np.asarray(privacy_acc, dtype=float)
    ranks = np.full(len(t), len(t), dtype=int)
    left = ~(np.isnan(t) | np.isnan(p))
    rank = 0
    while left.any():
        members = np.flatnonzero(left)
        front = members[pareto_mask(t[members], p[members])]
        ranks[front] = rank
        left[front] = False
        rank += 1
    return ranks


def crowding_distance(target_acc: Sequence[float], privacy_acc: Sequence[float]) -> np.ndarray:
    """NSGA-II's crowding distance of each point among the given ones (one front): per objective, the
    gap between its two neighbours over the objective's range, summed over both objectives. The two
    extremes of each objective get inf, so a front's ends are always kept; an objective on which
    every point is equal adds nothing."""
    t = np.asarray(target_acc, dtype=float)
    p = np.asarray(privacy_acc, dtype=float)
    distance = np.zeros(len(t))
    if len(t) <= 2:
        return np.full(len(t), np.inf)
    for values in (t, p):
        order = np.argsort(values, kind="stable")
        span = values[order[-1]] - values[order[0]]
        distance[order[[0, -1]]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (values[order[2:]] - values[order[:-2]]) / span
    return distance


def select_best(target_acc: Sequence[float], privacy_acc: Sequence[float], k: int) -> list[int]:
    """Indices of the k best points (A_T ↑, A_B^N ↓): by non-dominated rank, then within a rank by
    crowding distance (the most isolated first, so the chosen points spread along the front), then
    by index (the earlier trial). A duplicate of an earlier point comes after every distinct point
    of its rank, and crowding is measured among distinct points. NaN points are never chosen; fewer
    than k valid points give fewer."""
    t = np.asarray(target_acc, dtype=float)
    p = np.asarray(privacy_acc, dtype=float)
    ranks = nondominated_ranks(t, p)
    valid = np.flatnonzero(~(np.isnan(t) | np.isnan(p))).tolist()
    first = {}  # (A_T, A_B^N) -> the first index holding it
    for i in valid:
        first.setdefault((t[i], p[i]), i)
    duplicate = {i: first[(t[i], p[i])] != i for i in valid}
    crowding = np.zeros(len(t))
    for rank in np.unique(ranks[valid]):
        members = np.array([i for i in valid if ranks[i] == rank and not duplicate[i]])
        crowding[members] = crowding_distance(t[members], p[members])
    order = sorted(valid, key=lambda i: (ranks[i], duplicate[i], -crowding[first[(t[i], p[i])]], i))
    return order[:k]


def knee_index(target_acc: Sequence[float], privacy_acc: Sequence[float]) -> int | None:
    """The point nearest the ideal corner (the highest A_T and the lowest A_B^N among the points)
    after min-max scaling each objective over the points: the balanced choice of a front. An
    objective on which every point is equal counts as 0 for all. Ties: the lower A_B^N, then the
    first. None when no point is valid."""
    t = np.asarray(target_acc, dtype=float)
    p = np.asarray(privacy_acc, dtype=float)
    valid = np.flatnonzero(~(np.isnan(t) | np.isnan(p)))
    if len(valid) == 0:
        return None

    def gap(values: np.ndarray, best: float) -> np.ndarray:
        span = values.max() - values.min()
        return np.abs(values - best) / span if span > 0 else np.zeros(len(values))

    tv, pv = t[valid], p[valid]
    distance = np.hypot(gap(tv, tv.max()), gap(pv, pv.min()))
    return int(valid[min(range(len(valid)), key=lambda i: (distance[i], pv[i], i))])
