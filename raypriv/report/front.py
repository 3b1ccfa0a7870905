"""The Pareto report of a sweep: its trials in, the front and the report's files out (no MLflow here:
`raypriv.sweep.tracking` reads the trials from MLflow and logs the files on the parent run).

Files (also kept under `<home>/reports/<sweep>/`):

- `pareto.csv`: every trial (number, status, full budget or not, A_T, A_T fresh, A_B^N, sampled
  parameters) with an `on_front` flag;
- `pareto.png`: all complete trials, the front highlighted and labelled, the baselines (raw,
  downsampling, ...) when given, chance levels; beside it the hypervolume after each trial;
- `pareto.html`: the same scatter as a self-contained interactive page (plotly; hover a point for
  its trial and parameters); no network needed to open it;
- `hypervolume.csv`: the hypervolume of the front after each complete trial (also the parent
  run's `hypervolume` metric, step = trial number);
- `front/<trial>.yaml`: each front trial's resolved run config, ready for `raypriv train --config`.

Only trials that finished their full training budget (`raypriv.full_budget` = true, run status
FINISHED) count; child runs on the front get the tag `raypriv.pareto` = true, the others false.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from raypriv.report.pareto import hypervolume, pareto_mask
from raypriv.report.render import Point, baseline_kind, plot_tradeoff, tradeoff_html


@dataclass(frozen=True)
class TrialRecord:
    """One trial as MLflow holds it."""

    run_id: str
    trial: str
    number: int
    status: str
    full_budget: bool
    target_acc: float
    target_acc_fresh: float
    privacy_acc: float
    params: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Finished its full budget with both two-fold results: the only trials a front may hold."""
        return (self.status == "FINISHED" and self.full_budget
                and math.isfinite(self.target_acc) and math.isfinite(self.privacy_acc))


@dataclass(frozen=True)
class Baseline:
    method: str
    target_acc: float
    privacy_acc: float


@dataclass
class Report:
    sweep: str
    records: list[TrialRecord]
    on_front: dict[str, bool]  # run_id -> on the front (complete trials only)
    hypervolume: list[tuple[int, float]]  # (trial number, hypervolume after it), complete trials in order
    files: list[Path]
    chance: tuple[float, float] = (math.nan, math.nan)  # (A_T, A_B^N) chance levels

    @property
    def complete(self) -> list[TrialRecord]:
        return [r for r in self.records if r.complete]

    @property
    def front(self) -> list[TrialRecord]:
        """The front, most private first."""
        return sorted((r for r in self.complete if self.on_front[r.run_id]), key=lambda r: (r.privacy_acc, -r.target_acc))


def read_baselines(path: str | Path) -> list[Baseline]:
    """Rows of a `raypriv baselines` CSV (method, target_acc, ..., privacy_acc, ...)."""
    with open(path, newline="") as f:
        return [Baseline(row["method"], float(row["target_acc"]), float(row["privacy_acc"])) for row in csv.DictReader(f)]


def build_report(records: list[TrialRecord], out_dir: Path, *, sweep: str, configs: dict[str, dict] | None = None,
                 experiment: str = "sbu", profile: str | None = None, data_args: str = "--synthetic",
                 baselines: Sequence[Baseline] = (), chance: tuple[float, float] = (math.nan, math.nan)) -> Report:
    """Select the front over complete trials and write the report's files to `out_dir`.

    configs: run_id -> resolved run config of (at least) the front trials, for `front/<trial>.yaml`,
    whose header is the `raypriv train EXPERIMENT DATA_ARGS [--profile PROFILE] --config ...` command.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    complete = [r for r in records if r.complete]
    on_front = {r.run_id: bool(f) for r, f in zip(records, front_mask(records)) if r.complete}
    history = [(r.number, hypervolume([c.target_acc for c in complete[: i + 1]], [c.privacy_acc for c in complete[: i + 1]]))
               for i, r in enumerate(complete)]
    report = Report(sweep, records, on_front, history, [], chance)

    report.files.append(_write_csv(report, out_dir / "pareto.csv"))
    with open(out_dir / "hypervolume.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["number", "hypervolume"])
        writer.writerows([(n, f"{hv:.6f}") for n, hv in history])
    report.files.append(out_dir / "hypervolume.csv")
    points = _points(report, baselines)
    title = f"{sweep}: {len(complete)} complete trials"
    report.files.append(plot_tradeoff(points, out_dir / "pareto.png", title=title, chance=chance,
                                      hypervolume=history))
    report.files.append(tradeoff_html(points, out_dir / "pareto.html", title=title, chance=chance))
    front_dir = out_dir / "front"
    front_dir.mkdir(exist_ok=True)
    for old in front_dir.glob("*.yaml"):
        old.unlink()
    name = profile or "front"  # the trial's whole resolved run config, as one profile
    for r in report.front:
        if configs and r.run_id in configs:
            path = front_dir / f"{r.trial}.yaml"
            command = " ".join(filter(None, ["raypriv train", experiment, data_args, f"--profile {name}"]))
            header = (f"# {command} --config {path.name} --out runs/{sweep}/{r.trial}\n"
                      f"# Pareto-optimal trial {r.trial} of sweep {sweep}: A_T {100 * r.target_acc:.1f} %, "
                      f"A_B^N {100 * r.privacy_acc:.1f} % (MLflow run {r.run_id}).\n")
            doc = {"profiles": {name: configs[r.run_id]}}
            path.write_text(header + yaml.safe_dump(doc, sort_keys=False))
            report.files.append(path)
    return report


def format_front(report: Report, param_names: Sequence[str]) -> str:
    """A short text table of the front for the terminal."""
    rows = [["trial", "A_T", "A_T fresh", "A_B^N", *param_names]]
    for r in report.front:
        rows.append([r.trial, _pct(r.target_acc), _pct(r.target_acc_fresh), _pct(r.privacy_acc),
                     *[_short(r.params.get(p, "")) for p in param_names]])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def _pct(x: float) -> str:
    return "—" if not math.isfinite(x) else f"{100 * x:.1f} %"


def _short(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() and "." not in value else f"{number:.3g}"


def _write_csv(report: Report, path: Path) -> Path:
    params = sorted({k for r in report.records for k in r.params})
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["trial", "number", "run_id", "status", "full_budget", "on_front", "target_acc",
                         "target_acc_fresh", "privacy_acc", *params])
        for r in report.records:
            writer.writerow([r.trial, r.number, r.run_id, r.status, str(r.full_budget).lower(),
                             str(report.on_front.get(r.run_id, False)).lower(), _num(r.target_acc),
                             _num(r.target_acc_fresh), _num(r.privacy_acc), *[r.params.get(p, "") for p in params]])
    return path


def _num(x: float) -> str:
    return "" if not math.isfinite(x) else f"{x:.4f}"


def _points(report: Report, baselines: Sequence[Baseline]) -> list[Point]:
    """The report's complete trials (front or dominated) and the baselines, for the plots."""
    points = []
    for r in report.complete:
        details = "; ".join(f"{k}={v}" for k, v in sorted(r.params.items()))
        points.append(Point(f"#{r.number}", "front" if report.on_front[r.run_id] else "trial", r.target_acc,
                            r.privacy_acc, hover=f"{r.trial}: A_T {_pct(r.target_acc)}, A_B^N {_pct(r.privacy_acc)}; {details}"))
    points += [Point(b.method, baseline_kind(b.method), b.target_acc, b.privacy_acc,
                     hover=f"baseline {b.method}: A_T {_pct(b.target_acc)}, A_B^N {_pct(b.privacy_acc)}") for b in baselines]
    return points


def front_mask(records: Sequence[TrialRecord]) -> np.ndarray:
    """On-front flags for `records`: the front over complete (full-budget) trials only; False for the rest."""
    complete = [i for i, r in enumerate(records) if r.complete]
    mask = np.zeros(len(records), dtype=bool)
    if complete:
        mask[complete] = pareto_mask([records[i].target_acc for i in complete], [records[i].privacy_acc for i in complete])
    return mask
