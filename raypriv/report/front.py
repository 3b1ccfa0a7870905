"""The Pareto report of a sweep: its trials in, the front and the report's files out (no MLflow here:
`raypriv.sweep.tracking` reads the trials from MLflow and logs the files on the parent run).

Files (also kept under `<home>/reports/<sweep>/`):

- `pareto.csv`: every screening trial (number, status, full budget or not, A_T, A_T fresh, A_B^N,
  sampled parameters) with an `on_front` flag, then, after a confirmation stage, one row per
  confirmed configuration, control arm and baseline (`stage`, `seeds`, `*_mean`, `*_std` over the
  seeds, `overlaps`; `on_front`: on the confirmed front);
- `pareto.png`: all complete trials, the front highlighted and labelled, the baselines (raw,
  downsampling, ...) when given, chance levels; beside it the hypervolume after each trial. After
  a confirmation stage the screening trials are faint and the confirmed configurations, the control
  and the baselines bold, with mean ± std error bars;
- `pareto.html`: the same scatter as a self-contained interactive page (plotly; hover a point for
  its trial and parameters); no network needed to open it;
- `hypervolume.csv`: the hypervolume of the screening front after each complete trial (also the
  parent run's `hypervolume` metric, step = trial number);
- `front/<trial>.yaml`: each front trial's resolved run config, ready for `raypriv train --config`
  (after a confirmation stage: the confirmed front's full-protocol configs).

Only trials that finished their full training budget (`raypriv.full_budget` = true, run status
FINISHED) count; child runs on the front get the tag `raypriv.pareto` = true, the others false.
`front_markdown` is the front as a Markdown table (the parent run's description in MLflow).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import yaml

from raypriv.report.confirmed import Confirmation, Replicated, agreement_line, confirm, label, overlap_lines, pct
from raypriv.report.pareto import hypervolume, pareto_mask
from raypriv.report.render import HTML_KWARGS, Point, baseline_kind, tradeoff_figure, tradeoff_plotly


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
    confirmation: Confirmation | None = None  # the confirmation stage's groups, when it ran
    figures: dict[str, Any] = field(default_factory=dict)  # file name -> its matplotlib / plotly figure
    privacy: str = "A_B^N"  # the privacy score's name: A_B^N, or cMAP^N (multi-label privacy task)

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
                 baselines: Sequence[Baseline] = (), chance: tuple[float, float] = (math.nan, math.nan),
                 confirmed: Sequence[Replicated] = (), privacy: str = "A_B^N") -> Report:
    """Select the front over complete trials and write the report's files to `out_dir`.

    configs: run_id -> resolved run config of (at least) the front trials (after a confirmation
    stage: of each confirmed front configuration's first replicate), for `front/<trial>.yaml`, whose
    header is the `raypriv train EXPERIMENT DATA_ARGS [--profile PROFILE] --config ...` command.
    confirmed: the confirmation stage's groups (`raypriv.report.confirmed`), if it ran.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    complete = [r for r in records if r.complete]
    on_front = {r.run_id: bool(f) for r, f in zip(records, front_mask(records)) if r.complete}
    history = [(r.number, hypervolume([c.target_acc for c in complete[: i + 1]], [c.privacy_acc for c in complete[: i + 1]]))
               for i, r in enumerate(complete)]
    screen = {r.trial: {"target_acc": r.target_acc, "privacy_acc": r.privacy_acc} for r in complete}
    report = Report(sweep, records, on_front, history, [], chance, confirm(confirmed, screen) if confirmed else None,
                    privacy=privacy)

    report.files.append(_write_csv(report, out_dir / "pareto.csv"))
    with open(out_dir / "hypervolume.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["number", "hypervolume"])
        writer.writerows([(n, f"{hv:.6f}") for n, hv in history])
    report.files.append(out_dir / "hypervolume.csv")
    _write_plots(report, out_dir, baselines)
    _write_front_configs(report, out_dir / "front", configs or {}, experiment=experiment, profile=profile,
                         data_args=data_args)
    return report


def _write_plots(report: Report, out_dir: Path, baselines: Sequence[Baseline]) -> None:
    """pareto.png and pareto.html, written and kept as figures (for `MlflowClient.log_figure`)."""
    import matplotlib.pyplot as plt

    points = _points(report, baselines)
    title = f"{report.sweep}: {len(report.complete)} complete trials"
    if report.confirmation:
        confirmed = report.confirmation.of_stage("confirm")
        seeds = max((g.summary.n for g in confirmed), default=0)
        title += f" (faint); {len(confirmed)} confirmed over {seeds} seeds, mean ± std"
    png = tradeoff_figure(points, title=title, chance=report.chance, hypervolume=report.hypervolume,
                          privacy=report.privacy)
    png.savefig(out_dir / "pareto.png", dpi=110)
    plt.close(png)
    page = tradeoff_plotly(points, title=title, chance=report.chance, privacy=report.privacy)
    page.write_html(out_dir / "pareto.html", **HTML_KWARGS)
    report.figures = {"pareto.png": png, "pareto.html": page}
    report.files += [out_dir / "pareto.png", out_dir / "pareto.html"]


def _write_front_configs(report: Report, front_dir: Path, configs: dict[str, dict], *, experiment: str,
                         profile: str | None, data_args: str) -> None:
    """`front/<trial>.yaml` for each front trial (the confirmed front's, after a confirmation stage)."""
    front_dir.mkdir(exist_ok=True)
    for old in front_dir.glob("*.yaml"):
        old.unlink()
    name = profile or "front"  # the trial's whole resolved run config, as one profile
    command = " ".join(filter(None, ["raypriv train", experiment, data_args, f"--profile {name}"]))
    if report.confirmation:
        front = [(g.name, g.run_ids[0], f"Confirmed front configuration {g.name} of sweep {report.sweep}: A_T "
                  f"{pct(g.mean('target_acc'), g.std('target_acc'))}, {report.privacy} {pct(g.mean('privacy_acc'), g.std('privacy_acc'))} "
                  f"over seeds {' '.join(map(str, g.summary.seeds))} (MLflow runs {', '.join(g.run_ids)}); the config of "
                  f"the first seed's run.") for g in report.confirmation.front]
    else:
        front = [(r.trial, r.run_id, f"Pareto-optimal trial {r.trial} of sweep {report.sweep}: A_T "
                  f"{100 * r.target_acc:.1f} %, {report.privacy} {100 * r.privacy_acc:.1f} % (MLflow run {r.run_id}).")
                 for r in report.front]
    for trial, run_id, note in front:
        if run_id in configs:
            path = front_dir / f"{trial}.yaml"
            header = f"# {command} --config {path.name} --out runs/{report.sweep}/{trial}\n# {note}\n"
            path.write_text(header + yaml.safe_dump({"profiles": {name: configs[run_id]}}, sort_keys=False))
            report.files.append(path)


def format_front(report: Report, param_names: Sequence[str]) -> str:
    """A short text table of the front for the terminal."""
    rows = [["trial", "A_T", "A_T fresh", report.privacy, *param_names]]
    for r in report.front:
        rows.append([r.trial, _pct(r.target_acc), _pct(r.target_acc_fresh), _pct(r.privacy_acc),
                     *[_short(r.params.get(p, "")) for p in param_names]])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def front_markdown(report: Report, link: Callable[[str], str]) -> str:
    """The front as Markdown (the parent run's description in MLflow): after a confirmation stage
    the confirmed configurations, the control and the baselines with mean ± std, the rank agreement
    and the overlaps; else the screening front. `link(run_id)` is a run's address."""
    def runs(ids: Sequence[str], seeds: Sequence[int]) -> str:
        return " ".join(f"[s{s}]({link(i)})" for s, i in zip(seeds, ids))

    names = sorted({k for r in report.records for k in r.params})
    head = ["trial", "kind", "A_T", report.privacy, *names, "runs"]
    rows = []
    if report.confirmation:
        c = report.confirmation
        for g in c.groups:
            screen = next((r for r in report.records if r.trial == g.name), None)
            rows.append([g.name, label(g, c), pct(g.mean("target_acc"), g.std("target_acc")),
                         pct(g.mean("privacy_acc"), g.std("privacy_acc")), *[_short(g.params.get(p, "")) for p in names],
                         runs(g.run_ids, g.summary.seeds) + (f" · screening [{g.name}]({link(screen.run_id)})" if screen else "")])
        intro = (f"**Confirmed front** of sweep `{report.sweep}`: the best {len(c.of_stage('confirm'))} of "
                 f"{len(report.complete)} screening trials re-run at the full protocol; mean ± std over seeds.")
        tail = [agreement_line(c, report.privacy), *overlap_lines(c)]
    else:
        for r in report.front:
            rows.append([r.trial, "front", _pct(r.target_acc), _pct(r.privacy_acc),
                         *[_short(r.params.get(p, "")) for p in names], f"[{r.trial}]({link(r.run_id)})"])
        intro = (f"**Pareto front** of sweep `{report.sweep}` over {len(report.complete)} complete screening trials "
                 f"(one seed each, screening fidelity).")
        tail = []
    table = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join([intro, "", *table, "", *(f"- {line}" for line in tail)]).rstrip() + "\n"


def _pct(x: float) -> str:
    return "—" if not math.isfinite(x) else f"{100 * x:.1f} %"


def _short(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() and "." not in value else f"{number:.3g}"


_STATS = ("target_acc", "target_acc_fresh", "privacy_acc")


def _write_csv(report: Report, path: Path) -> Path:
    """One row per screening trial, then one per confirmation-stage group (mean ± std over its seeds)."""
    params = sorted({k for r in report.records for k in r.params})
    stats = [f"{k}_{s}" for k in _STATS for s in ("mean", "std")]
    numbers = {r.trial: r.number for r in report.records}
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["trial", "number", "run_id", "stage", "seeds", "status", "full_budget", "on_front",
                         *_STATS, *stats, "overlaps", *params])
        for r in report.records:
            values = [r.target_acc, r.target_acc_fresh, r.privacy_acc]
            writer.writerow([r.trial, r.number, r.run_id, "screen", "", r.status, str(r.full_budget).lower(),
                             str(report.on_front.get(r.run_id, False)).lower(), *map(_num, values),
                             *[_num(x) for v in values for x in (v, math.nan)], "",
                             *[r.params.get(p, "") for p in params]])
        c = report.confirmation
        for g in c.groups if c else ():
            means = [_num(g.mean(k)) for k in _STATS]
            writer.writerow([g.name, numbers.get(g.name, "") if g.stage == "confirm" else "", " ".join(g.run_ids),
                             g.stage, " ".join(map(str, g.summary.seeds)), "FINISHED", "true",
                             str(c.on_front.get(g.name, False)).lower(), *means,
                             *[_num(v) for k in _STATS for v in (g.mean(k), g.std(k))],
                             " ".join(c.overlaps.get(g.name, ())), *[g.params.get(p, "") for p in params]])
    return path


def _num(x: float) -> str:
    return "" if not math.isfinite(x) else f"{x:.4f}"


def _points(report: Report, baselines: Sequence[Baseline]) -> list[Point]:
    """The report's complete trials (front or dominated; faint after a confirmation stage), the
    confirmation stage's groups (bold, mean ± std) and the baselines, for the plots."""
    faint = report.confirmation is not None
    points = []
    for r in report.complete:
        details = "; ".join(f"{k}={v}" for k, v in sorted(r.params.items()))
        points.append(Point(f"#{r.number}", "front" if report.on_front[r.run_id] else "trial", r.target_acc,
                            r.privacy_acc, faint=faint,
                            hover=f"{r.trial}: A_T {_pct(r.target_acc)}, {report.privacy} {_pct(r.privacy_acc)}; {details}"))
    if report.confirmation:
        points += [_group_point(g, report) for g in report.confirmation.groups]
    points += [Point(b.method, baseline_kind(b.method), b.target_acc, b.privacy_acc,
                     hover=f"baseline {b.method}: A_T {_pct(b.target_acc)}, {report.privacy} {_pct(b.privacy_acc)}")
               for b in baselines]
    return points


def _group_point(g: Replicated, report: Report) -> Point:
    c = report.confirmation
    numbers = {r.trial: r.number for r in report.records}
    if g.stage == "confirm":
        kind = "front" if c.on_front[g.name] else "confirmed"
        text = f"#{numbers[g.name]}" if g.name in numbers else g.name
        text += " knee" if g.name == c.knee else ""
    else:
        kind = baseline_kind(g.name) if g.stage == "baseline" else f"{g.name} (control)"
        text = g.name
    details = "; ".join(f"{k}={v}" for k, v in sorted(g.params.items()))
    hover = (f"{g.name} ({label(g, c)}), seeds {' '.join(map(str, g.summary.seeds))}: A_T "
             f"{pct(g.mean('target_acc'), g.std('target_acc'))}, {report.privacy} {pct(g.mean('privacy_acc'), g.std('privacy_acc'))}"
             + (f"; {details}" if details else ""))
    return Point(text, kind, g.mean("target_acc"), g.mean("privacy_acc"), g.std("target_acc"), g.std("privacy_acc"),
                 hover=hover)


def front_mask(records: Sequence[TrialRecord]) -> np.ndarray:
    """On-front flags for `records`: the front over complete (full-budget) trials only; False for the rest."""
    complete = [i for i, r in enumerate(records) if r.complete]
    mask = np.zeros(len(records), dtype=bool)
    if complete:
        mask[complete] = pareto_mask([records[i].target_acc for i in complete], [records[i].privacy_acc for i in complete])
    return mask
