"""`raypriv compare`: replicated, paired evidence. Every arm x seed of a comparison is one
full-protocol run (the profile without its `trial:` fidelity), run as a Tune trial on the sweep's
machinery (TorchTrainer workers, checkpoints, MLflow child runs under one parent run, `--resume`).

Written to `--out` and logged on the parent run, all rebuilt from MLflow alone:

- `runs.csv`: one row per arm x seed: `arm, seed, target_acc, target_acc_fresh, privacy_acc`, then
  the run's status, worst attacker, config digest and every other scalar it logged (each
  attacker's accuracy as `attacker/<name>`, `seconds/*`, `steps/*`, `pretrain/*`, ...);
- `summary.csv`: per arm n, mean and std of each objective, and the paired difference to the
  first arm over the seeds both ran, with its 95 % t-interval (`raypriv.report.stats`);
- `compare.png` / `compare.html`: A_B^N against fresh A_T, each arm's mean ± std bold and its seeds
  faint, with the baselines of `--baselines` (a `raypriv baselines` CSV) when given.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from raypriv.report.confirmed import privacy_name
from raypriv.report.stats import OBJECTIVES, ArmSummary, summarise
from raypriv.sweep.config import CompareConfig
from raypriv.sweep.driver import SweepOutcome, collect, data_root, prepare, session, tune_fixed
from raypriv.sweep.plan import TrialSpec, compare_id
from raypriv.sweep.tracking import TAG_ARM, TAG_SEED, TAG_STAGE, Locations

FILES = ("runs.csv", "summary.csv", "compare.png", "compare.html")


@dataclass
class CompareOutcome(SweepOutcome):
    rows: list[dict] = field(default_factory=list)  # runs.csv
    summary: list[ArmSummary] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    privacy: str = "A_B^N"  # how the privacy score reads: A_B^N, or cMAP^N for a multi-label privacy task


def compare_specs(config: CompareConfig) -> list[TrialSpec]:
    """One fixed trial per arm x seed, named `<arm>_s<seed>`, tagged with its arm and seed."""
    return [TrialSpec(name=f"{r.arm}_s{r.seed}", number=i, params={"arm": r.arm, "seed": r.seed}, run=r.run,
                      tags={TAG_ARM: r.arm, TAG_SEED: str(r.seed), TAG_STAGE: "compare"})
            for i, r in enumerate(config.runs)]


def run_compare(
    config: CompareConfig,
    *,
    synthetic: bool,
    root: str | None = None,
    locations: Locations,
    out_dir: Path,
    resume: bool = False,
    resume_if_exists: bool = False,
    baselines: Path | None = None,
    echo: Callable[[str], None] = print,
) -> CompareOutcome:
    """Run (or resume) every arm x seed of `config`, then write and log the comparison's files."""
    started = time.perf_counter()
    root = data_root(config.runs[0].run, synthetic, root)
    run_id = compare_id(config, synthetic=synthetic, root=root)
    resume = prepare(run_id, locations, resume=resume, resume_if_exists=resume_if_exists, what="comparison",
                     missing=lambda: None, hint="change the arms, seeds or --set to start another")
    specs = compare_specs(config)
    echo(f"comparison {run_id}: arms {', '.join(config.arms)} x seeds {', '.join(map(str, config.seeds))} = "
         f"{len(specs)} runs, {config.sweep.concurrency} at a time ({config.source})")
    params = {"experiment": config.name, "profile": config.profile or "", "arms": ",".join(config.arms),
              "seeds": ",".join(map(str, config.seeds)), "concurrency": config.sweep.concurrency,
              "workers": config.sweep.workers, "data_args": "--synthetic" if synthetic else f"--root {root}",
              "source": config.source}
    texts = {f"arms/{r.arm}_s{r.seed}.yaml": r.run.model_dump(mode="json") for r in config.runs}
    with session(config.name, run_id, config.sweep, config.source, locations, role="compare", params=params,
                 texts=texts, synthetic=synthetic, root=root, echo=echo) as (plan, mlflow_client):
        results = tune_fixed(plan, specs, locations, resume=resume, echo=echo)
    outcome = CompareOutcome(run_id, locations, None)
    collect(results, len(specs), outcome)
    outcome.rows = compare_rows(mlflow_client, plan.experiment_id, plan.parent_run_id)
    outcome.summary = summarise([r for r in outcome.rows if r["status"] == "FINISHED"], config.arms)
    outcome.privacy = privacy_name(outcome.rows)
    outcome.files = write_comparison(outcome.rows, outcome.summary, out_dir, title=run_id, baselines=baselines,
                                     privacy=outcome.privacy)
    for path in outcome.files:
        mlflow_client.log_artifact(plan.parent_run_id, str(path))
    mlflow_client.set_tag(plan.parent_run_id, "mlflow.note.content", summary_markdown(outcome.summary, outcome.privacy))
    mlflow_client.set_terminated(plan.parent_run_id, status=outcome.status)
    outcome.seconds = time.perf_counter() - started
    return outcome


def compare_rows(mlflow_client, experiment_id: str, parent_run_id: str) -> list[dict]:
    """The comparison's child runs as rows (arm, seed, objectives, status, ..., every other scalar)."""
    from raypriv.sweep.tracking import child_runs, run_rows

    return run_rows(child_runs(mlflow_client, experiment_id, parent_run_id))


def write_comparison(rows: list[dict], summary: list[ArmSummary], out_dir: Path, *, title: str,
                     baselines: Path | None = None, privacy: str = "A_B^N") -> list[Path]:
    """runs.csv, summary.csv, compare.png and compare.html in `out_dir`."""
    from raypriv.report.front import read_baselines
    from raypriv.report.render import Point, baseline_kind, plot_tradeoff, tradeoff_html

    out_dir.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(out_dir / "runs.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    _write_summary(summary, out_dir / "summary.csv")
    finished = [r for r in rows if r["status"] == "FINISHED"]
    points = [Point(f"{r['arm']} s{r['seed']}", r["arm"], r["target_acc_fresh"], r["privacy_acc"], faint=True,
                    hover=f"{r['arm']} seed {r['seed']}: fresh A_T {100 * r['target_acc_fresh']:.1f} %, "
                          f"{privacy} {100 * r['privacy_acc']:.1f} % ({r['worst_attacker']})") for r in finished]
    points += [Point(a.arm, a.arm, a.mean["target_acc_fresh"], a.mean["privacy_acc"], a.std["target_acc_fresh"],
                     a.std["privacy_acc"], hover=f"{a.arm}: n = {a.n}") for a in summary if a.n]
    points += [Point(b.method, baseline_kind(b.method), b.target_acc, b.privacy_acc)
               for b in (read_baselines(baselines) if baselines else [])]
    chance = next(((r.get("chance_target", math.nan), r.get("chance_privacy", math.nan)) for r in finished),
                  (math.nan, math.nan))
    heading = f"{title}: fresh A_T against {privacy}, mean ± std over seeds (faint: each seed)"
    return [out_dir / "runs.csv", out_dir / "summary.csv",
            plot_tradeoff(points, out_dir / "compare.png", title=heading, chance=chance, privacy=privacy),
            tradeoff_html(points, out_dir / "compare.html", title=heading, chance=chance, privacy=privacy)]


def _write_summary(summary: list[ArmSummary], path: Path) -> None:
    columns = ["arm", "n", "seeds"]
    for k in OBJECTIVES:
        columns += [f"{k}_mean", f"{k}_std"]
    for k in OBJECTIVES:
        columns += [f"{k}_diff", f"{k}_diff_low", f"{k}_diff_high"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for a in summary:
            row = [a.arm, a.n, " ".join(map(str, a.seeds))]
            row += [_num(v) for k in OBJECTIVES for v in (a.mean[k], a.std[k])]
            row += [_num(v) for k in OBJECTIVES for v in a.diff[k]]
            writer.writerow(row)


def _num(x: float) -> str:
    return "" if not math.isfinite(x) else f"{x:.4f}"


def summary_markdown(summary: list[ArmSummary], privacy: str = "A_B^N") -> str:
    """The summary as a Markdown table (the parent run's description in the MLflow UI); `privacy`
    names the privacy column (A_B^N, or cMAP^N)."""
    from raypriv.report.confirmed import pct

    reference = summary[0].arm if summary else ""

    def diff(d: tuple[float, float, float]) -> str:
        return "–" if not math.isfinite(d[0]) else f"{100 * d[0]:+.1f} [{100 * d[1]:+.1f}, {100 * d[2]:+.1f}]" \
            if math.isfinite(d[1]) else f"{100 * d[0]:+.1f}"

    lines = [f"| arm | n | fresh A_T | {privacy} | fresh A_T − {reference} (95 %) | {privacy} − {reference} (95 %) |",
             "|---|---|---|---|---|---|"]
    for a in summary:
        lines.append(f"| {a.arm} | {a.n} | {pct(a.mean['target_acc_fresh'], a.std['target_acc_fresh'])} | "
                     f"{pct(a.mean['privacy_acc'], a.std['privacy_acc'])} | {diff(a.diff['target_acc_fresh'])} | "
                     f"{diff(a.diff['privacy_acc'])} |")
    return "\n".join(lines)
