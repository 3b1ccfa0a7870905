"""What every benchmark of `bench/run_all.py` shares: the figure record, and running the real
`raypriv sweep` / `raypriv baselines` commands in a scratch home and reading back what they left.

Benchmarks never re-implement the sweep: they run the installed CLI (`python -m raypriv ...`) in
its own process session, exactly as a user would, then read the trials from the stores the CLI
documents (MLflow sqlite `<home>/mlflow.db`, Optuna sqlite `<home>/optuna.db`) through
`raypriv.tracking`. Sweeps are memoised per process, so figures that need the same sweep (time to
front, trial overhead, trade-off) share one run.
"""

from __future__ import annotations

import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SPACE = REPO / "search_spaces" / "sbu.yaml"
EXPERIMENT = "sbu"
# Variables that would point a sweep at somebody else's Ray cluster or stores: benchmarks measure
# an embedded local Ray with sqlite stores in a scratch home.
_SWEEP_ENV_VARS = ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "RAYPRIV_HOME", "RAYPRIV_OPTUNA_STORAGE",
                   "RAYPRIV_RAY_STORAGE", "RAYPRIV_SBU_ROOT")


@dataclass
class Figure:
    """One measured figure: `value` against `goal` (met when `value <= goal`, or `>=` for better=">=")."""

    value: float | None
    goal: float
    unit: str
    better: str  # "<=" or ">="
    command: str  # what to run to measure it again
    tiny: bool
    details: dict[str, Any] = field(default_factory=dict)  # absolute times and the parts of the ratio
    note: str = ""

    @property
    def met(self) -> bool:
        if self.value is None or not math.isfinite(self.value):
            return False
        return self.value <= self.goal if self.better == "<=" else self.value >= self.goal

    def as_dict(self) -> dict[str, Any]:
        return _finite({"value": self.value, "goal": self.goal, "unit": self.unit, "met": self.met,
                        "better": self.better, "tiny": self.tiny, "command": self.command,
                        "details": self.details, "note": self.note})


def _finite(obj: Any) -> Any:
    """JSON has no NaN or infinity: they become null (the figure's note says why)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def median(values: list[float]) -> float:
    values = sorted(values)
    if not values:
        return math.nan
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def log(message: str) -> None:
    """Progress goes to stderr so that stdout holds the table alone."""
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Running the CLI


@dataclass
class SweepRun:
    """One `raypriv sweep` and what it left in its home."""

    command: str  # as a user would type it (without --home)
    home: Path
    seconds: float  # wall time of the whole command
    sweep_id: str
    target_acc: list[float]  # per trial, in Optuna trial-number order; NaN where the trial is not complete
    privacy_acc: list[float]
    complete: list[bool]  # finished its full budget with both two-fold results
    trial_seconds: dict[int, float]  # trial number -> Tune function wall time (the driver's parent-run metric)
    overhead_seconds: dict[int, float]  # trial number -> wall time minus trainer time
    trial_span_seconds: float  # first trial asked -> last trial told (Optuna's timestamps)
    finished_trials: int  # COMPLETE or FAIL in the Optuna study


class BenchError(RuntimeError):
    pass


class Workspace:
    """Scratch folders for the CLI runs of one `run_all` invocation, and the sweep memo."""

    def __init__(self, root: Path | None, keep: bool, timeout_s: float, threads: int) -> None:
        self._scratch = root is None  # ours to delete (unless kept, or a run failed and its logs matter)
        self.root = Path(root or tempfile.mkdtemp(prefix="raypriv-bench-")).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.keep, self.timeout_s, self.threads = keep, timeout_s, threads
        self._sweeps: dict[tuple, SweepRun] = {}
        self._baselines: dict[tuple, list] = {}
        self._count = 0

    def close(self) -> None:
        if self.keep:
            log(f"kept the benchmark homes under {self.root}")
        elif self._scratch:
            shutil.rmtree(self.root, ignore_errors=True)

    def _folder(self, label: str) -> Path:
        self._count += 1
        folder = self.root / f"{self._count:02d}-{label}"
        folder.mkdir(parents=True)
        return folder

    def sweep(self, profile: str, *, trials: int | None = None, concurrency: int | None = None,
              sampler: str | None = None, seed: int | None = None, workers: int | None = None) -> SweepRun:
        """`raypriv sweep sbu --synthetic --profile PROFILE [...]` in a fresh home (memoised).

        Options equal to the profile's own setting are dropped before the memo lookup, so the
        search-efficiency benchmark's MO-TPE seed-0 sweep and random seed-0 sweep are the very runs
        of `time_to_front_s` and of `concurrency_speedup`'s 2-at-a-time arm when they ask for the
        same thing, and the command shown is the one a user would type.
        """
        from raypriv.sweep.config import load_sweep_config

        shipped = load_sweep_config(SPACE, profile).sweep
        options = []
        for flag, value, default in (("--trials", trials, shipped.trials),
                                     ("--concurrency", concurrency, shipped.concurrency),
                                     ("--sampler", sampler, shipped.sampler), ("--seed", seed, shipped.seed),
                                     ("--workers", workers, shipped.workers)):
            if value is not None and value != default:
                options += [flag, str(value)]
        key = (profile, *options)
        if key not in self._sweeps:
            args = ["sweep", EXPERIMENT, "--synthetic", "--profile", profile, *options]
            home = self._folder("-".join(["sweep", profile, *(o.lstrip("-") for o in options)]))
            seconds = self._cli(args + ["--home", str(home)], home / "sweep.log", env=_sweep_env())
            self._sweeps[key] = _read_sweep(home, "raypriv " + shlex.join(args), seconds)
        return self._sweeps[key]

    def baselines(self, profile: str, methods: tuple[str, ...]) -> tuple[str, list]:
        """`raypriv baselines sbu --synthetic --profile PROFILE --methods ...`: (command, rows)."""
        from raypriv.report.front import read_baselines

        # --sweep-trial: the fidelity of the sweep trials these baselines are compared with.
        args = ["baselines", EXPERIMENT, "--synthetic", "--profile", profile, "--sweep-trial", "--methods", ",".join(methods)]
        key = (profile, methods)
        if key not in self._baselines:
            out = self._folder(f"baselines-{profile}")
            env = {**os.environ, "OMP_NUM_THREADS": str(self.threads)}
            self._cli(args + ["--out", str(out)], out / "baselines.log", env=env)
            self._baselines[key] = read_baselines(out / "baselines.csv")
        return "raypriv " + shlex.join(args) + " --out DIR", self._baselines[key]

    def _cli(self, args: list[str], log_path: Path, *, env: dict[str, str]) -> float:
        """Run `python -m raypriv ARGS` in its own session; its output goes to `log_path`. Returns wall seconds."""
        log(f"$ raypriv {shlex.join(args)}   (log: {log_path})")
        start = time.perf_counter()
        with open(log_path, "w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "raypriv", *args], cwd=REPO, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                code = proc.wait(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                _stop_session(proc)
                raise BenchError(f"raypriv {args[0]} ran past {self.timeout_s:.0f} s (--timeout); its log: "
                                 f"{log_path}\n{_tail(log_path)}") from None
            except KeyboardInterrupt:
                _stop_session(proc)
                raise
        seconds = time.perf_counter() - start
        if code != 0:
            self.keep = True
            raise BenchError(f"raypriv {args[0]} exited with {code} after {seconds:.0f} s; its log: {log_path}\n"
                             f"{_tail(log_path)}")
        log(f"  done in {seconds:.1f} s")
        return seconds


def _sweep_env() -> dict[str, str]:
    # Without OMP_NUM_THREADS Ray gives each Train worker floor(its CPUs) threads (at least 1), so
    # a sweep runs with the threads its profile's resources say, not this shell's setting.
    env = {k: v for k, v in os.environ.items() if k not in _SWEEP_ENV_VARS and k != "OMP_NUM_THREADS"}
    # An embedded Ray listens on 127.0.0.1 only (raypriv's driver); tests and CI run it without a token.
    env.setdefault("RAY_AUTH_MODE", "disabled")
    return env


def _stop_session(proc: subprocess.Popen) -> None:
    """Stop the CLI we started and everything in its session (its local Ray included): SIGINT lets the
    driver shut Ray down; what is left after 30 s is killed."""
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            if sig == signal.SIGKILL:
                return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, chars: int = 3000) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-chars:]


def _read_sweep(home: Path, command: str, seconds: float) -> SweepRun:
    """The trials of the one sweep in `home`, read from its MLflow and Optuna sqlite stores."""
    import optuna

    from raypriv.sweep.space import study_trials
    from raypriv.sweep.tracking import records_from_runs
    from raypriv.sweep.tracking import child_runs, client, find_parent, latest_sweep

    mlflow_client = client(f"sqlite:///{home / 'mlflow.db'}")
    experiment = mlflow_client.get_experiment_by_name(EXPERIMENT)
    sweep = latest_sweep(mlflow_client, experiment.experiment_id) if experiment else None
    parent = find_parent(mlflow_client, experiment.experiment_id, sweep) if sweep else None
    if parent is None:
        raise BenchError(f"the sweep in {home} left no MLflow parent run")
    records = records_from_runs(child_runs(mlflow_client, experiment.experiment_id, parent.info.run_id))

    def history(metric: str) -> dict[int, float]:
        return {m.step: m.value for m in mlflow_client.get_metric_history(parent.info.run_id, metric)}

    trials = study_trials(f"sqlite:///{home / 'optuna.db'}", sweep) or []
    finished = [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)]
    span = math.nan
    if finished:
        first = min(t.datetime_start for t in finished)
        last = max(t.datetime_complete for t in finished)
        span = (last - first).total_seconds()
    by_number = {r.number: r for r in records}
    numbers = range(max([r.number for r in records] + [t.number for t in trials] + [-1]) + 1)
    return SweepRun(
        command=command, home=home, seconds=seconds, sweep_id=sweep,
        target_acc=[by_number[n].target_acc if n in by_number and by_number[n].complete else math.nan for n in numbers],
        privacy_acc=[by_number[n].privacy_acc if n in by_number and by_number[n].complete else math.nan for n in numbers],
        complete=[n in by_number and by_number[n].complete for n in numbers],
        trial_seconds=history("trial_seconds"), overhead_seconds=history("trial_overhead_seconds"),
        trial_span_seconds=span, finished_trials=len(finished),
    )

