"""The Pareto report of a sweep, built from its MLflow runs alone and logged on its parent run.

Files (also kept under `<home>/reports/<sweep>/`):

- `pareto.csv`: every trial (number, status, full budget or not, A_T, A_T fresh, A_B^N, sampled
  parameters) with an `on_front` flag;
- `pareto.png`: all complete trials, the front highlighted and labelled, the baselines (raw,
  downsampling, ...) when given, chance levels; beside it the hypervolume after each trial;
- `pareto.html`: the same scatter as a self-contained page (hover a point for its trial and
  parameters) with a sortable table; no network needed to open it;
- `hypervolume.csv`: the hypervolume of the front after each complete trial (also the parent
  run's `hypervolume` metric, step = trial number);
- `front/<trial>.yaml`: each front trial's resolved run config, ready for `raypriv train --config`.

Only trials that finished their full training budget (`raypriv.full_budget` = true, run status
FINISHED) count; child runs on the front get the tag `raypriv.pareto` = true, the others false.
"""

from __future__ import annotations

import csv
import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from raypriv.tracking.pareto import hypervolume, pareto_mask
from raypriv.tracking.store import TAG_FULL_BUDGET, TAG_NUMBER, TAG_PARETO, TAG_TRIAL


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


def records_from_runs(runs: Sequence[Any]) -> list[TrialRecord]:
    """MLflow child runs -> records, in trial-number order."""
    out = []
    for run in runs:
        m, tags = run.data.metrics, run.data.tags
        out.append(TrialRecord(
            run_id=run.info.run_id, trial=tags.get(TAG_TRIAL, run.info.run_name), number=int(tags.get(TAG_NUMBER, -1)),
            status=run.info.status, full_budget=tags.get(TAG_FULL_BUDGET) == "true",
            target_acc=m.get("target_acc", math.nan), target_acc_fresh=m.get("target_acc_fresh", math.nan),
            privacy_acc=m.get("privacy_acc", math.nan), params=dict(run.data.params),
        ))
    return sorted(out, key=lambda r: r.number)


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
    report.files.append(_plot(report, baselines, out_dir / "pareto.png"))
    report.files.append(_html(report, baselines, out_dir / "pareto.html"))
    front_dir = out_dir / "front"
    front_dir.mkdir(exist_ok=True)
    for old in front_dir.glob("*.yaml"):
        old.unlink()
    for r in report.front:
        if configs and r.run_id in configs:
            path = front_dir / f"{r.trial}.yaml"
            command = " ".join(filter(None, ["raypriv train", experiment, data_args, profile and f"--profile {profile}"]))
            header = (f"# {command} --config {path.name} --out runs/{sweep}/{r.trial}\n"
                      f"# Pareto-optimal trial {r.trial} of sweep {sweep}: A_T {100 * r.target_acc:.1f} %, "
                      f"A_B^N {100 * r.privacy_acc:.1f} % (MLflow run {r.run_id}).\n")
            doc = {"base": configs[r.run_id], "profiles": {profile: {}} if profile else {}}
            path.write_text(header + yaml.safe_dump(doc, sort_keys=False))
            report.files.append(path)
    return report


def publish_report(mlflow_client, parent_run_id: str, report: Report) -> None:
    """Log the report's files and hypervolume on the parent run; tag every child run on or off the front."""
    from mlflow.entities import Metric

    for path in report.files:
        mlflow_client.log_artifact(parent_run_id, str(path), artifact_path="front" if path.parent.name == "front" else None)
    if report.hypervolume:
        mlflow_client.log_batch(parent_run_id, metrics=[Metric("hypervolume", hv, 0, n) for n, hv in report.hypervolume])
    for r in report.records:
        mlflow_client.set_tag(r.run_id, TAG_PARETO, str(report.on_front.get(r.run_id, False)).lower())


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


def _plot(report: Report, baselines: Sequence[Baseline], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    complete, front = report.complete, report.front
    fig, (ax, ax_hv) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [2, 1]})
    others = [r for r in complete if not report.on_front[r.run_id]]
    ax.scatter([100 * r.privacy_acc for r in others], [100 * r.target_acc for r in others], s=36, c="0.65",
               label=f"trial ({len(others)} dominated)", zorder=2)
    if front:
        xs, ys = [100 * r.privacy_acc for r in front], [100 * r.target_acc for r in front]
        ax.step(xs, ys, where="post", c="tab:red", lw=1.2, alpha=0.6, zorder=3)
        ax.scatter(xs, ys, s=70, c="tab:red", edgecolors="k", label=f"Pareto front ({len(front)} trials)", zorder=4)
        labels: dict[tuple[float, float], list[str]] = {}
        for r, x, y in zip(front, xs, ys):  # tied points share one label
            labels.setdefault((x, y), []).append(f"#{r.number}")
        for (x, y), names in labels.items():
            ax.annotate(", ".join(names), (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    for b in baselines:
        ax.scatter([100 * b.privacy_acc], [100 * b.target_acc], marker="X", s=70, c="k", zorder=4)
        ax.annotate(b.method, (100 * b.privacy_acc, 100 * b.target_acc), textcoords="offset points",
                    xytext=(6, -10), fontsize=8)
    if baselines:
        ax.scatter([], [], marker="X", c="k", label="baselines")
    chance_t, chance_b = report.chance
    if math.isfinite(chance_b):
        ax.axvline(100 * chance_b, ls=":", c="tab:blue", lw=1, label=f"identity chance ({100 * chance_b:.1f} %)")
    if math.isfinite(chance_t):
        ax.axhline(100 * chance_t, ls=":", c="tab:green", lw=1, label=f"action chance ({100 * chance_t:.1f} %)")
    ax.annotate("better", xy=(0.04, 0.96), xycoords="axes fraction", xytext=(0.2, 0.8),
                arrowprops={"arrowstyle": "->"}, fontsize=9)
    ax.set(xlim=(0, 100), ylim=(0, 100), xlabel="A_B^N: best fresh attacker's identity accuracy (%), lower = more private",
           ylabel="A_T: action accuracy on f_d(X) (%), higher = more useful")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    incomplete = len(report.records) - len(complete)
    ax.set_title(f"{report.sweep}: {len(complete)} complete trials" + (f" ({incomplete} incomplete not shown)" if incomplete else ""),
                 fontsize=10)
    if report.hypervolume:
        numbers, values = zip(*report.hypervolume)
        ax_hv.step(numbers, values, where="post", c="tab:red")
        ax_hv.scatter(numbers, values, s=12, c="tab:red")
    ax_hv.set(xlabel="trial number", ylabel="hypervolume (reference: A_T 0 %, A_B^N 100 %)", ylim=(0, 1))
    ax_hv.xaxis.get_major_locator().set_params(integer=True)
    ax_hv.set_title("front quality after each trial", fontsize=10)
    ax_hv.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _html(report: Report, baselines: Sequence[Baseline], path: Path) -> Path:
    """A dependency-free interactive page: an SVG scatter with hover details and a sortable table."""
    size, pad = 460, 50

    def xy(privacy: float, target: float) -> tuple[float, float]:
        return pad + privacy * size, pad + (1 - target) * size

    shapes = []
    for tick in range(0, 101, 20):
        x, y = xy(tick / 100, tick / 100)
        shapes.append(f'<line x1="{x}" y1="{pad}" x2="{x}" y2="{pad + size}" class="grid"/>'
                      f'<text x="{x}" y="{pad + size + 18}" text-anchor="middle">{tick}</text>'
                      f'<line x1="{pad}" y1="{y}" x2="{pad + size}" y2="{y}" class="grid"/>'
                      f'<text x="{pad - 8}" y="{y + 4}" text-anchor="end">{tick}</text>')
    for r in report.complete:
        x, y = xy(r.privacy_acc, r.target_acc)
        on = report.on_front[r.run_id]
        details = "; ".join(f"{k}={v}" for k, v in sorted(r.params.items()))
        tip = html.escape(f"{r.trial}: A_T {_pct(r.target_acc)}, A_B^N {_pct(r.privacy_acc)}; {details}")
        shapes.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{7 if on else 5}" class="{"front" if on else "trial"}">'
                      f"<title>{tip}</title></circle>")
    for b in baselines:
        x, y = xy(b.privacy_acc, b.target_acc)
        tip = html.escape(f"baseline {b.method}: A_T {_pct(b.target_acc)}, A_B^N {_pct(b.privacy_acc)}")
        shapes.append(f'<text x="{x:.1f}" y="{y + 5:.1f}" text-anchor="middle" class="baseline">✕<title>{tip}</title></text>'
                      f'<text x="{x + 8:.1f}" y="{y - 6:.1f}" class="label">{html.escape(b.method)}</text>')
    params = sorted({k for r in report.records for k in r.params})
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["trial", "on front", "status", "A_T %", "A_T fresh %", "A_B^N %", *params])
    rows = []
    for r in report.records:
        cells = [r.trial, "yes" if report.on_front.get(r.run_id) else "", r.status if r.complete or r.status != "FINISHED"
                 else "FINISHED (partial budget)", _num100(r.target_acc), _num100(r.target_acc_fresh), _num100(r.privacy_acc),
                 *[r.params.get(p, "") for p in params]]
        rows.append(f'<tr class="{"front" if report.on_front.get(r.run_id) else ""}">'
                    + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Pareto front: {html.escape(report.sweep)}</title>
<style>
body {{ font: 14px sans-serif; margin: 1.5em; }} svg text {{ font-size: 11px; }}
.grid {{ stroke: #ddd; }} .trial {{ fill: #999; }} .front {{ fill: #d62728; stroke: #000; }}
.baseline {{ font-size: 16px; }} .label {{ fill: #333; }}
table {{ border-collapse: collapse; margin-top: 1em; }} td, th {{ border: 1px solid #ccc; padding: 2px 6px; }}
th {{ cursor: pointer; background: #f3f3f3; }} tr.front td {{ background: #fde3e3; }}
</style></head><body>
<h2>Sweep {html.escape(report.sweep)}</h2>
<p>{len(report.complete)} complete trials, {len(report.front)} on the Pareto front (red): higher A_T (action
accuracy) and lower A_B^N (the best fresh attacker's identity accuracy) are better; the goal is the top left.
Hover a point for its parameters; click a column header to sort.</p>
<svg width="{size + 2 * pad}" height="{size + 2 * pad}">
{''.join(shapes)}
<text x="{pad + size / 2}" y="{size + 2 * pad - 4}" text-anchor="middle">A_B^N (%), lower = more private</text>
<text x="14" y="{pad + size / 2}" text-anchor="middle" transform="rotate(-90 14 {pad + size / 2})">A_T (%), higher = more useful</text>
</svg>
<table id="trials"><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>
<script>
document.querySelectorAll("#trials th").forEach((th, i) => th.onclick = () => {{
  const body = document.querySelector("#trials tbody"), rows = [...body.rows];
  const key = r => {{ const t = r.cells[i].textContent, n = parseFloat(t); return isNaN(n) ? t : n; }};
  const dir = th.dataset.dir = th.dataset.dir === "asc" ? "desc" : "asc";
  rows.sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (dir === "asc" ? 1 : -1));
  rows.forEach(r => body.appendChild(r));
}});
</script>
</body></html>
"""
    path.write_text(page)
    return path


def _num100(x: float) -> str:
    return "" if not math.isfinite(x) else f"{100 * x:.1f}"


def front_mask(records: Sequence[TrialRecord]) -> np.ndarray:
    """On-front flags for `records`: the front over complete (full-budget) trials only; False for the rest."""
    complete = [i for i, r in enumerate(records) if r.complete]
    mask = np.zeros(len(records), dtype=bool)
    if complete:
        mask[complete] = pareto_mask([records[i].target_acc for i in complete], [records[i].privacy_acc for i in complete])
    return mask


def report_from_mlflow(mlflow_client, experiment_id: str, parent_run_id: str, sweep: str, out_dir: Path, *,
                       baselines: str | Path | None = None) -> Report:
    """Rebuild a sweep's report from MLflow alone: its child runs, their config.yaml, the parent's params."""
    import tempfile

    from raypriv.tracking.store import child_runs, scoped_env

    runs = child_runs(mlflow_client, experiment_id, parent_run_id)
    records = records_from_runs(runs)
    configs = {}
    with tempfile.TemporaryDirectory() as tmp, scoped_env(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"):
        for record, on_front in zip(records, front_mask(records)):
            if on_front:
                path = mlflow_client.download_artifacts(record.run_id, "config.yaml", tmp)
                configs[record.run_id] = yaml.safe_load(Path(path).read_text())
    with_chance = [r.data.metrics for r in runs if "chance_privacy" in r.data.metrics]
    chance = (with_chance[0]["chance_target"], with_chance[0]["chance_privacy"]) if with_chance else (math.nan, math.nan)
    parent = mlflow_client.get_run(parent_run_id).data.params
    return build_report(
        records, out_dir, sweep=sweep, configs=configs, experiment=parent.get("experiment", "sbu"),
        profile=parent.get("profile") or None, data_args=parent.get("data_args", ""),
        baselines=read_baselines(baselines) if baselines else (), chance=chance,
    )


def rebuild_report(experiment: str, sweep: str | None, locations, *, baselines: str | Path | None = None):
    """`raypriv pareto`: the report of `sweep` (default: the latest sweep of `experiment`), rebuilt from
    MLflow and logged again on its parent run. Returns (report, parent run id)."""
    from raypriv.tracking.store import client, find_parent, latest_sweep, redact

    c = client(locations.tracking_uri)
    found = c.get_experiment_by_name(experiment)
    if found is None:
        raise LookupError(f"no MLflow experiment {experiment!r} in {redact(locations.tracking_uri)}; "
                          f"run `raypriv sweep {experiment}` first (or point --home / MLFLOW_TRACKING_URI at its store)")
    sweep = sweep or latest_sweep(c, found.experiment_id)
    parent = find_parent(c, found.experiment_id, sweep) if sweep else None
    if parent is None:
        raise LookupError(f"no sweep {sweep!r} in experiment {experiment!r} of {redact(locations.tracking_uri)}")
    report = report_from_mlflow(c, found.experiment_id, parent.info.run_id, sweep, locations.report_dir(sweep),
                                baselines=baselines)
    publish_report(c, parent.info.run_id, report)
    return report, parent.info.run_id
