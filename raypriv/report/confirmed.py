"""A sweep's confirmation stage in numbers: screening configurations re-run at the full protocol
with several seeds, beside the control arm and the baselines, each summarised as mean ± std over
its seeds (`raypriv.report.stats`). Pure numpy and scipy: `raypriv.sweep.tracking` reads the runs
from MLflow, `raypriv.report.front` writes the report's files.

- the confirmed front: the Pareto front of the confirmed configurations' means (A_T ↑, A_B^N ↓);
- the rank agreement: Kendall τ per objective between the configurations' screening values and
  their confirmed means. 1: screening ranked them as the full protocol does; −1: the reverse; NaN
  with fewer than two configurations or no spread. It says whether the cheap fidelity can be
  trusted to rank;
- overlaps: pairs of confirmed configurations whose mean ± std boxes intersect on both objectives:
  at this number of seeds neither can be called better than the other;
- the knee: the confirmed front point nearest the ideal corner after min-max scaling
  (`raypriv.report.pareto.knee_index`), the balanced choice (the one registered as `knee`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from raypriv.report.pareto import knee_index, pareto_mask
from raypriv.report.stats import ArmSummary

STAGES = ("confirm", "control", "baseline")  # the confirmation stage's kinds of run, in report order
FRONT_OBJECTIVES = ("target_acc", "privacy_acc")  # the sweep's objectives: what fronts are computed on


@dataclass(frozen=True)
class Replicated:
    """One configuration run with several seeds at the full protocol: a confirmed screening trial
    (named after it), the control arm, or a baseline method (named after the arm or the method)."""

    stage: str  # one of STAGES
    summary: ArmSummary  # n, seeds, mean and std of each objective over the seeds
    run_ids: tuple[str, ...]  # the replicates' MLflow runs, in seed order
    params: dict[str, str] = field(default_factory=dict)  # a confirmed trial's sampled values

    @property
    def name(self) -> str:
        return self.summary.arm

    def mean(self, objective: str) -> float:
        return self.summary.mean[objective]

    def std(self, objective: str) -> float:
        return self.summary.std[objective]


@dataclass(frozen=True)
class Confirmation:
    """The confirmation stage's groups and what the report states about them."""

    groups: list[Replicated]
    on_front: dict[str, bool]  # confirmed configuration -> on the front of the means
    rank_agreement: dict[str, float]  # objective -> Kendall τ (screening value vs confirmed mean)
    overlaps: dict[str, tuple[str, ...]]  # confirmed configuration -> those its error bars overlap
    knee: str | None  # the knee of the confirmed front

    def of_stage(self, stage: str) -> list[Replicated]:
        return [g for g in self.groups if g.stage == stage]

    @property
    def front(self) -> list[Replicated]:
        """The confirmed front, most private first."""
        return sorted((g for g in self.of_stage("confirm") if self.on_front[g.name]),
                      key=lambda g: (g.mean("privacy_acc"), -g.mean("target_acc")))


def confirm(groups: Sequence[Replicated], screen: Mapping[str, Mapping[str, float]]) -> Confirmation:
    """The confirmed front, rank agreement, overlaps and knee of `groups`; `screen` maps each
    screening trial to its screening values (objective -> value)."""
    confirmed = [g for g in groups if g.stage == "confirm"]
    means = {k: [g.mean(k) for g in confirmed] for k in FRONT_OBJECTIVES}
    mask = pareto_mask(means["target_acc"], means["privacy_acc"])
    on_front = {g.name: bool(f) for g, f in zip(confirmed, mask)}
    front = [g for g in confirmed if on_front[g.name]]
    knee = knee_index([g.mean("target_acc") for g in front], [g.mean("privacy_acc") for g in front])
    ordered = sorted(groups, key=lambda g: (STAGES.index(g.stage), g.name))
    return Confirmation(ordered, on_front, rank_agreement(confirmed, screen), overlaps(confirmed),
                        None if knee is None else front[knee].name)


def rank_agreement(confirmed: Sequence[Replicated], screen: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Kendall τ per objective between the screening values and the confirmed means (NaN: undefined)."""
    from scipy.stats import kendalltau

    out = {}
    for k in FRONT_OBJECTIVES:
        pairs = [(screen[g.name][k], g.mean(k)) for g in confirmed
                 if g.name in screen and math.isfinite(screen[g.name].get(k, math.nan)) and math.isfinite(g.mean(k))]
        if len(pairs) < 2:
            out[k] = math.nan
            continue
        with warnings.catch_warnings():  # constant input: scipy warns and returns NaN, which is the answer
            warnings.simplefilter("ignore")
            out[k] = float(kendalltau(*zip(*pairs)).statistic)
    return out


def overlaps(confirmed: Sequence[Replicated]) -> dict[str, tuple[str, ...]]:
    """For each confirmed configuration, the others whose mean ± std box intersects its own on both
    objectives (a single seed has no std: its box is the point)."""

    def box(g: Replicated, k: str) -> tuple[float, float]:
        spread = g.std(k) if math.isfinite(g.std(k)) else 0.0
        return g.mean(k) - spread, g.mean(k) + spread

    def intersect(a: Replicated, b: Replicated) -> bool:
        return all(box(a, k)[0] <= box(b, k)[1] and box(b, k)[0] <= box(a, k)[1] for k in FRONT_OBJECTIVES)

    return {a.name: tuple(b.name for b in confirmed if b is not a and intersect(a, b)) for a in confirmed}


def privacy_label(metric: str) -> str:
    """How the privacy score reads: A_B^N (the attackers' best accuracy) or cMAP^N (their best cMAP)."""
    return "A_B^N" if metric == "accuracy" else "cMAP^N"


def privacy_name(metrics: Iterable[Mapping[str, object]]) -> str:
    """The privacy score's name for runs known by their logged metrics (MLflow metrics, or the rows
    of `run_rows`): cMAP^N when they logged `privacy_cmap` (a multi-label privacy task), else A_B^N."""
    return privacy_label("cmap" if any("privacy_cmap" in m for m in metrics) else "accuracy")


def pct(mean: float, std: float = math.nan) -> str:
    """`62.5 ± 3.1 %`, `62.5 %` without a std, `–` without a value."""
    if not math.isfinite(mean):
        return "–"
    return f"{100 * mean:.1f} ± {100 * std:.1f} %" if math.isfinite(std) else f"{100 * mean:.1f} %"


def label(g: Replicated, confirmation: Confirmation) -> str:
    """How a group is named in tables: the knee, front or dominated for a confirmed trial, else its stage."""
    if g.stage != "confirm":
        return g.stage
    return "front, knee" if g.name == confirmation.knee else "front" if confirmation.on_front[g.name] else "dominated"


def format_confirmed(confirmation: Confirmation, privacy: str = "A_B^N") -> str:
    """A short text table of the confirmation stage for the terminal, then τ and the overlaps;
    `privacy` names the privacy score (`privacy_label`)."""
    rows = [["", "", "seeds", "A_T", "A_T fresh", privacy]]
    for g in confirmation.groups:
        rows.append([g.name, label(g, confirmation), " ".join(map(str, g.summary.seeds)),
                     *(pct(g.mean(k), g.std(k)) for k in ("target_acc", "target_acc_fresh", "privacy_acc"))])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join([*lines, "", agreement_line(confirmation, privacy), *overlap_lines(confirmation)])


def agreement_line(confirmation: Confirmation, privacy: str = "A_B^N") -> str:
    n = len(confirmation.of_stage("confirm"))
    names = {**_NAMES, "privacy_acc": privacy}
    taus = ", ".join(f"{names[k]} {_tau(v)}" for k, v in confirmation.rank_agreement.items())
    return f"Rank agreement of screening with the full protocol (Kendall τ over {n} configurations): {taus}"


def overlap_lines(confirmation: Confirmation) -> list[str]:
    """One line per pair of confirmed configurations whose error bars overlap."""
    pairs = sorted({tuple(sorted((a, b))) for a, others in confirmation.overlaps.items() for b in others})
    return [f"Error bars overlap: {a} and {b} (mean ± std on both objectives): not distinguishable at these seeds"
            for a, b in pairs]


_NAMES = {"target_acc": "A_T", "target_acc_fresh": "fresh A_T", "privacy_acc": "A_B^N"}


def _tau(value: float) -> str:
    return f"{value:+.2f}" if math.isfinite(value) else "undefined (fewer than 2 configurations or no spread)"
