"""Where a sweep's records live, and its MLflow runs.

Embedded defaults (nothing set): everything under one folder, `--home`, else `$RAYPRIV_HOME`,
else `./.raypriv`:

    .raypriv/mlflow.db            MLflow tracking store (sqlite)
    .raypriv/mlartifacts/<space>/ MLflow artifacts (an explicit artifact location per experiment)
    .raypriv/optuna.db            Optuna studies, one per sweep
    .raypriv/ray/tune/<sweep>/    Ray Tune experiment state (what --resume restores)
    .raypriv/ray/train/<sweep>/   Ray Train runs, one per trial, with their checkpoints
    .raypriv/reports/<sweep>/     a local copy of the Pareto report

`MLFLOW_TRACKING_URI` selects a tracking server instead (its artifact store then applies),
`--optuna-storage` / `$RAYPRIV_OPTUNA_STORAGE` an RDB URL for the studies, and `--ray-storage` /
`$RAYPRIV_RAY_STORAGE` the folder or `s3://bucket/prefix` that holds Ray's `tune/` and `train/`
(on a cluster: storage every node can write, cluster/README.md).

Runs: one experiment per search space; one parent run per sweep (tag `raypriv.sweep_id`); one
child run per trial, nested under it and found again by its trial name, so a retried or resumed
trial reuses its run. Only a trial's rank-0 Train worker writes its child run (`TrialRun`).
"""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import yaml

from raypriv.report.confirmed import privacy_name
from raypriv.report.front import Report, TrialRecord, build_report, front_mask, read_baselines

HOME_ENV = "RAYPRIV_HOME"
OPTUNA_STORAGE_ENV = "RAYPRIV_OPTUNA_STORAGE"
RAY_STORAGE_ENV = "RAYPRIV_RAY_STORAGE"
DEFAULT_HOME = ".raypriv"

TAG_ROLE = "raypriv.role"  # "sweep" or "compare" on parent runs, "trial" on child runs
TAG_SWEEP = "raypriv.sweep_id"
TAG_TRIAL = "raypriv.trial"
TAG_NUMBER = "raypriv.trial_number"
TAG_COMMIT = "raypriv.git_commit"
TAG_DIRTY = "raypriv.git_dirty"
TAG_VERSION = "raypriv.version"
TAG_FULL_BUDGET = "raypriv.full_budget"
TAG_PARETO = "raypriv.pareto"
TAG_FAILURE = "raypriv.failure"
TAG_STAGE = "raypriv.stage"  # what a child run is for: screen | confirm | control | baseline | compare
TAG_ARM = "raypriv.arm"  # a comparison's arm
TAG_SEED = "raypriv.seed"  # the run config's seed of a replicate
TAG_WORKERS = "raypriv.workers"  # Ray Train workers (data-parallel ranks) of the trial
TAG_RESUMED = "raypriv.resumed_from"  # the loop iteration a restarted worker continued from
TAG_DIGEST = "raypriv.config_digest"  # sha256 of the resolved run config (a baseline's: + its method)
TAG_CONFIRMS = "raypriv.confirms"  # a confirmation run: the screening trial it re-runs at the full protocol
TAG_CACHED = "raypriv.cached_from"  # a control or baseline run whose metrics are another sweep's run's
TAG_DATA = "raypriv.data"  # what a child run trained on: "synthetic" or the real data's root
TAG_PARENT = "mlflow.parentRunId"
PROGRESS_METRIC = "train/loss_target"  # logged at every adversarial iteration: how far a trial's run got


@dataclass(frozen=True)
class Locations:
    """The stores of a sweep: MLflow, Optuna, Ray's experiment folders, local report copies."""

    home: Path
    tracking_uri: str
    artifact_root: Path | None  # explicit artifact folder for new experiments (embedded store only)
    optuna_storage: str
    ray_storage: str = ""  # absolute folder or URI (s3://bucket/prefix) for Ray; "" = <home>/ray

    @property
    def ray_root(self) -> str:
        return (self.ray_storage or str(self.home / "ray")).rstrip("/")

    @property
    def tune_storage(self) -> str:
        """Ray Tune's `storage_path`: one experiment (what --resume restores) per sweep under it."""
        return f"{self.ray_root}/tune"

    def train_storage(self, sweep: str) -> str:
        """Ray Train's `storage_path` for the sweep's trials: one run (its checkpoint) per trial."""
        return f"{self.ray_root}/train/{sweep}"

    def report_dir(self, sweep: str) -> Path:
        return self.home / "reports" / sweep

    def mlflow_ui_command(self) -> str:
        if self.artifact_root is None:
            return f"open the MLflow server at {redact(self.tracking_uri)}"
        return f"mlflow ui --backend-store-uri {self.tracking_uri} --host 127.0.0.1 --port 5000"

    def mlflow_ui_address(self, path: str) -> str:
        """Where `path` (`ui_path`) opens: on `mlflow_ui_command`'s server, or on the tracking server."""
        if self.artifact_root is not None:
            return f"http://127.0.0.1:5000/{path}"
        server = redact(self.tracking_uri).rstrip("/")
        return f"{server}/{path}" if server.startswith(("http://", "https://")) else path


def locations(home: str | Path | None = None, optuna_storage: str | None = None,
              ray_storage: str | None = None) -> Locations:
    """Resolve the stores from arguments and environment (see the module docstring)."""
    home = Path(home or os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser().resolve()
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    embedded = not uri
    ray_storage = ray_storage or os.environ.get(RAY_STORAGE_ENV) or ""
    if ray_storage and "://" not in ray_storage:  # a folder: Ray needs it absolute
        ray_storage = str(Path(ray_storage).expanduser().resolve())
    return Locations(
        home=home,
        tracking_uri=f"sqlite:///{home / 'mlflow.db'}" if embedded else uri,
        artifact_root=home / "mlartifacts" if embedded else None,
        optuna_storage=optuna_storage or os.environ.get(OPTUNA_STORAGE_ENV) or f"sqlite:///{home / 'optuna.db'}",
        ray_storage=ray_storage,
    )


def storage_exists(path_or_uri: str) -> bool:
    """Whether a folder (or an object-store prefix, e.g. s3://bucket/prefix) exists."""
    if "://" not in path_or_uri:
        return Path(path_or_uri).exists()
    import pyarrow.fs

    filesystem, path = pyarrow.fs.FileSystem.from_uri(path_or_uri)
    return filesystem.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def redact(url: str) -> str:
    """`url` with any password masked, for printing (RDB URLs may carry credentials)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL (e.g. http://): print scheme and host only
        head, sep, tail = url.partition("://")
        return head + sep + tail.rpartition("@")[2] if sep else url


@contextlib.contextmanager
def scoped_env(**values: str) -> Iterator[None]:
    """Set environment variables for the duration of a block (library switches read at call time)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def client(tracking_uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def git_commit() -> tuple[str, bool]:
    """(commit, dirty) of the checkout raypriv runs from; ("unknown", False) outside a git checkout."""
    repo = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    return commit, bool(status.strip())


def provenance_tags() -> dict[str, str]:
    """Tags every run of a sweep carries: git commit (also as MLflow's own tag) and raypriv version."""
    from raypriv import __version__

    commit, dirty = git_commit()
    tags = {TAG_COMMIT: commit, TAG_DIRTY: str(dirty).lower(), TAG_VERSION: __version__}
    if commit != "unknown":
        tags["mlflow.source.git.commit"] = commit
    return tags


# Marks the experiment as model training (not GenAI) for MLflow and its API. MLflow 3.17's UI
# ignores the tag when it picks a view: it opens in the workflow chosen in its sidebar (a browser
# setting, GenAI at first) unless the address says `?workflowType=machine_learning`, so every
# address raypriv prints or writes carries that (`ui_path`; tests/test_mlflow_browser.py checks it).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
TRAINING_VIEW = "workflowType=machine_learning"


def ui_path(experiment_id: str, run_id: str | None = None) -> str:
    """The MLflow UI's address of an experiment or run, relative to the server, in the training view."""
    return f"#/experiments/{experiment_id}" + (f"/runs/{run_id}" if run_id else "") + f"?{TRAINING_VIEW}"


def ensure_experiment(mlflow_client, name: str, artifact_root: Path | None) -> str:
    """The id of experiment `name`, created (with an explicit artifact location when embedded) if new,
    tagged as a model-training experiment."""
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is None:
        location = (artifact_root / name).as_uri() if artifact_root is not None else None
        return mlflow_client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)
    if experiment.lifecycle_stage == "deleted":
        mlflow_client.restore_experiment(experiment.experiment_id)
    for key, value in EXPERIMENT_KIND.items():
        if experiment.tags.get(key) != value:
            mlflow_client.set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id


def find_parent(mlflow_client, experiment_id: str, sweep: str, role: str = "sweep"):
    runs = mlflow_client.search_runs(
        [experiment_id], filter_string=f"tags.`{TAG_SWEEP}` = '{sweep}' and tags.`{TAG_ROLE}` = '{role}'", max_results=2,
    )
    return runs[0] if runs else None


def latest_sweep(mlflow_client, experiment_id: str) -> str | None:
    """The sweep id of the most recently started parent run in the experiment."""
    runs = mlflow_client.search_runs([experiment_id], filter_string=f"tags.`{TAG_ROLE}` = 'sweep'",
                                     order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0].data.tags[TAG_SWEEP] if runs else None


def start_parent(mlflow_client, experiment_id: str, sweep: str, tags: Mapping[str, str], role: str = "sweep") -> str:
    """The parent run of a sweep or comparison (found again on --resume), marked RUNNING."""
    run = find_parent(mlflow_client, experiment_id, sweep, role)
    if run is not None:
        mlflow_client.update_run(run.info.run_id, status="RUNNING")
        return run.info.run_id
    run = mlflow_client.create_run(experiment_id, run_name=sweep, tags={**tags, TAG_SWEEP: sweep, TAG_ROLE: role})
    return run.info.run_id


def child_runs(mlflow_client, experiment_id: str, parent_run_id: str) -> list:
    """Every child run of a sweep (all pages)."""
    runs, token = [], None
    while True:
        page = mlflow_client.search_runs([experiment_id], filter_string=f"tags.`{TAG_PARENT}` = '{parent_run_id}'",
                                         max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


OUTAGE_DEADLINE_S = 900.0  # how long a trial waits for its tracking store to come back before failing


def _tracking_errors() -> tuple[type[BaseException], ...]:
    import requests
    from mlflow.exceptions import MlflowException

    return (MlflowException, requests.exceptions.RequestException, OSError)


def with_retry(call, what: str, *, deadline_s: float = OUTAGE_DEADLINE_S, first_wait_s: float = 1.0,
               sleep=time.sleep, clock=time.monotonic):
    """`call()`, retried with backoff (1, 2, 4 .. 15 s) while the tracking store is unreachable, for
    up to `deadline_s`; then the last error, naming `what`. MLflow's own HTTP retries are turned off
    for the call, so an outage costs the wait and nothing else (writes are idempotent by step)."""
    errors = _tracking_errors()
    start, wait = clock(), first_wait_s
    while True:
        try:
            with scoped_env(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0"):
                return call()
        except errors as err:
            if clock() - start + wait > deadline_s:
                raise RuntimeError(f"MLflow unreachable for {clock() - start:.0f} s while {what}: "
                                   f"{type(err).__name__}") from None
            sleep(wait)
            wait = min(2 * wait, 15.0)


class TrialRun:
    """The MLflow child run of one trial; written from the trial's rank-0 Train worker only.

    Tracking outages never stop training: per-iteration metrics are buffered and replayed with the
    next iteration (same key, step and timestamp, which MLflow stores once), and the final result
    and the run's end wait for the store to come back (`with_retry`).
    """

    def __init__(self, mlflow_client, run_id: str, logged_through: int = 0) -> None:
        self.ended = False  # finish() ends the run once; later calls (the worker's last word) do nothing
        self.client = mlflow_client
        self.run_id = run_id
        # Last iteration an earlier attempt of the trial logged: a retried trial retrains from the
        # start, and its iterations up to this one are not logged again (one value per step).
        self.logged_through = logged_through
        self.pending: list = []  # metrics not yet accepted by the tracking store
        self.outages = 0  # flushes that found the store unreachable (what the outage cost: nothing lost)

    def flush(self, *, wait: bool = False) -> bool:
        """Send the buffered metrics; with `wait`, retry until the store answers (`with_retry`)."""
        if not self.pending:
            return True
        batch = self.pending[:1000]  # MLflow's log_batch limit
        try:
            if wait:
                with_retry(lambda: self.client.log_batch(self.run_id, metrics=batch), "flushing metrics")
            else:
                with scoped_env(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0"):
                    self.client.log_batch(self.run_id, metrics=batch)
        except _tracking_errors():
            self.outages += 1
            return False
        del self.pending[: len(batch)]
        return self.flush(wait=wait)

    @classmethod
    def start(cls, tracking_uri: str, experiment_id: str, parent_run_id: str, *, sweep: str, trial: str,
              number: int, params: Mapping[str, Any], tags: Mapping[str, str]) -> "TrialRun":
        """Find the trial's run under the parent (a retry or resume) or create it; log its parameters."""
        from mlflow.entities import Param

        c = client(tracking_uri)

        def find_or_create() -> tuple[str, int]:
            runs = c.search_runs([experiment_id], max_results=2, filter_string=(
                f"tags.`{TAG_PARENT}` = '{parent_run_id}' and tags.`{TAG_TRIAL}` = '{trial}'"))
            if runs:
                run_id = runs[0].info.run_id
                c.update_run(run_id, status="RUNNING")
                if TAG_FAILURE in runs[0].data.tags:  # an earlier attempt's failure: this attempt decides
                    c.delete_tag(run_id, TAG_FAILURE)
                return run_id, max((m.step for m in c.get_metric_history(run_id, PROGRESS_METRIC)), default=0)
            return c.create_run(experiment_id, run_name=trial, tags={
                **tags, TAG_PARENT: parent_run_id, TAG_SWEEP: sweep, TAG_ROLE: "trial", TAG_TRIAL: trial,
                TAG_NUMBER: str(number),
            }).info.run_id, 0

        # Found by its trial tag before anything is created, so a retry after an outage that hit
        # create_run mid-way reuses the run if it was created.
        run_id, logged_through = with_retry(find_or_create, f"starting the run of {trial}")
        # Same names and values on a retry, which MLflow accepts.
        with_retry(lambda: c.log_batch(run_id, params=[Param(k, str(v)) for k, v in sorted(params.items())]),
                   f"logging the parameters of {trial}")
        return cls(c, run_id, logged_through)

    def log_iteration(self, row: Mapping[str, Any]) -> None:
        """One adversarial iteration's training metrics, as `train/<name>` at step = iteration."""
        from mlflow.entities import Metric

        step = int(row["iteration"])
        if step <= self.logged_through:
            return
        now = int(time.time() * 1000)
        self.pending += [Metric(f"train/{k}", float(v), now, step) for k, v in row.items() if k != "iteration" and _numeric(v)]
        self.flush()

    def log_result(self, metrics: Mapping[str, Any], files: list[Path], *, full_budget: bool) -> None:
        """The final two-fold metrics, every attacker's accuracy, the run's files, and summary tags."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        values = {k: metrics[k] for k in ("target_acc", "target_acc_fresh", "privacy_acc", "privacy_cmap", "chance_target",
                                          "chance_privacy", "degrader_params", "target_params") if k in metrics}
        values.update({f"attacker/{name}": acc for name, acc in metrics.get("privacy_per_attacker", {}).items()})
        values.update({f"seconds/{k}": v for k, v in metrics.get("seconds", {}).items()})
        values.update({f"steps/{k}": v for k, v in metrics.get("steps", {}).items()})
        values.update({f"pretrain/{k}": v for k, v in metrics.get("pretrain", {}).items()})
        tags = {TAG_FULL_BUDGET: str(full_budget).lower(), "worst_attacker": str(metrics.get("worst_attacker")),
                "budget_models": ",".join(metrics.get("budget_models", [])),
                "attackers": ",".join(metrics.get("attackers", []))}
        self.flush(wait=True)
        with_retry(lambda: self.client.log_batch(
            self.run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in values.items() if _numeric(v)],
            tags=[RunTag(k, v) for k, v in tags.items()],
        ), "logging the two-fold result")
        for path in files:
            if path.exists():
                with_retry(lambda: self.client.log_artifact(self.run_id, str(path)), f"uploading {path.name}")

    def resumed_from(self, iteration: int) -> None:
        """Mark the run as continued from a checkpoint taken after `iteration` (0: after pre-training)."""
        with_retry(lambda: self.client.set_tag(self.run_id, TAG_RESUMED, str(iteration)), "tagging the resume")

    def finish(self, status: str = "FINISHED", reason: str | None = None) -> None:
        """End the run (once); a failed one carries its reason as the tag `raypriv.failure` (one line)."""
        if self.ended:
            return
        self.ended = True
        self.flush(wait=True)
        if reason:
            with_retry(lambda: self.client.set_tag(self.run_id, TAG_FAILURE, reason.splitlines()[0][:500]),
                       "tagging the failure")
        with_retry(lambda: self.client.set_terminated(self.run_id, status=status), "ending the run")


# --- The Pareto report from and to MLflow ---------------------------------------------------------

def is_screening(run) -> bool:
    """A sweep's screening trial (a child run without a stage is one: sweeps before the confirmation stage)."""
    return run.data.tags.get(TAG_STAGE, "screen") == "screen"


def records_from_runs(runs: Sequence[Any]) -> list[TrialRecord]:
    """A sweep's screening child runs -> records, in trial-number order (other stages are left out)."""
    out = []
    for run in filter(is_screening, runs):
        m, tags = run.data.metrics, run.data.tags
        out.append(TrialRecord(
            run_id=run.info.run_id, trial=tags.get(TAG_TRIAL, run.info.run_name), number=int(tags.get(TAG_NUMBER, -1)),
            status=run.info.status, full_budget=tags.get(TAG_FULL_BUDGET) == "true",
            target_acc=m.get("target_acc", math.nan), target_acc_fresh=m.get("target_acc_fresh", math.nan),
            privacy_acc=m.get("privacy_acc", math.nan), params=dict(run.data.params),
        ))
    return sorted(out, key=lambda r: r.number)


def run_rows(runs: Sequence[Any]) -> list[dict]:
    """Child runs of replicates as rows: arm (`raypriv.arm`), seed, the objectives, status, worst
    attacker, config digest, run id, then every other scalar the run logged."""
    from raypriv.report.stats import OBJECTIVES

    rows = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        row = {"arm": tags.get(TAG_ARM, ""), "seed": int(tags.get(TAG_SEED, -1)),
               **{k: metrics.get(k, math.nan) for k in OBJECTIVES},
               "status": run.info.status, "worst_attacker": tags.get("worst_attacker", ""),
               "config_digest": tags.get(TAG_DIGEST, ""), "run_id": run.info.run_id}
        row.update({k: v for k, v in sorted(metrics.items()) if k not in row})
        rows.append(row)
    return sorted(rows, key=lambda r: (r["arm"], r["seed"]))


def replicated_groups(runs: Sequence[Any]) -> list:
    """A sweep's confirmation-stage child runs that FINISHED, grouped by what they replicate (their
    `raypriv.arm`: the confirmed screening trial, the control arm, the baseline method), each
    summarised over its seeds (`raypriv.report.confirmed.Replicated`)."""
    from raypriv.report.confirmed import STAGES, Replicated
    from raypriv.report.stats import summarise

    finished = [r for r in runs if r.data.tags.get(TAG_STAGE) in STAGES and r.info.status == "FINISHED"]
    rows = run_rows(finished)
    by_arm = {r.data.tags.get(TAG_ARM, ""): r for r in finished}
    arms = sorted(by_arm)
    groups = []
    for summary in summarise(rows, arms):
        run = by_arm[summary.arm]
        stage = run.data.tags[TAG_STAGE]
        groups.append(Replicated(stage, summary, tuple(r["run_id"] for r in rows if r["arm"] == summary.arm),
                                 dict(run.data.params) if stage == "confirm" else {}))
    return groups


def publish_report(mlflow_client, parent_run_id: str, report: Report):
    """Log the report on the parent run (files; plots with `log_figure`; the hypervolume; Kendall τ),
    set the run's description to the front as a Markdown table, tag every child run on or off the
    front, and register the confirmed front's degraders (`raypriv.sweep.registry`): returns the
    `RegisteredFront`, or None without a confirmed front."""
    from mlflow.entities import Metric

    from raypriv.report.front import front_markdown
    from raypriv.report.render import HTML_KWARGS

    for path in report.files:
        if path.name in report.figures:
            save = HTML_KWARGS if path.suffix == ".html" else {"dpi": 110}
            mlflow_client.log_figure(parent_run_id, report.figures[path.name], path.name, save_kwargs=save)
        else:
            mlflow_client.log_artifact(parent_run_id, str(path), artifact_path="front" if path.parent.name == "front" else None)
    if report.hypervolume:
        mlflow_client.log_batch(parent_run_id, metrics=[Metric("hypervolume", hv, 0, n) for n, hv in report.hypervolume])
    for r in report.records:
        mlflow_client.set_tag(r.run_id, TAG_PARETO, str(report.on_front.get(r.run_id, False)).lower())
    experiment_id = mlflow_client.get_run(parent_run_id).info.experiment_id
    mlflow_client.set_tag(parent_run_id, "mlflow.note.content", front_markdown(report, lambda run: ui_path(experiment_id, run)))
    c = report.confirmation
    if c is None:
        return None
    for g in c.of_stage("confirm"):
        for run_id in g.run_ids:
            mlflow_client.set_tag(run_id, TAG_PARETO, str(c.on_front[g.name]).lower())
    taus = [Metric(f"kendall_tau/{k}", v, 0, 0) for k, v in c.rank_agreement.items() if math.isfinite(v)]
    if taus:
        mlflow_client.log_batch(parent_run_id, metrics=taus)
    if not c.front:
        return None
    from raypriv.sweep.registry import register_front

    return register_front(mlflow_client, report, experiment_id)


def report_from_mlflow(mlflow_client, experiment_id: str, parent_run_id: str, sweep: str, out_dir: Path, *,
                       baselines: str | Path | None = None) -> Report:
    """Rebuild a sweep's report from MLflow alone: its child runs, their config.yaml, the parent's params."""
    import tempfile

    runs = child_runs(mlflow_client, experiment_id, parent_run_id)
    records = records_from_runs(runs)
    groups = replicated_groups(runs)
    # Configs for front/*.yaml: the screening front's, or each confirmed configuration's first replicate's.
    wanted = [g.run_ids[0] for g in groups if g.stage == "confirm"] if groups else \
        [record.run_id for record, on_front in zip(records, front_mask(records)) if on_front]
    configs = {}
    with tempfile.TemporaryDirectory() as tmp, scoped_env(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"):
        for run_id in wanted:
            path = mlflow_client.download_artifacts(run_id, "config.yaml", tmp)
            configs[run_id] = yaml.safe_load(Path(path).read_text())
    with_chance = [r.data.metrics for r in runs if "chance_privacy" in r.data.metrics]
    chance = (with_chance[0]["chance_target"], with_chance[0]["chance_privacy"]) if with_chance else (math.nan, math.nan)
    parent = mlflow_client.get_run(parent_run_id).data.params
    return build_report(
        records, out_dir, sweep=sweep, configs=configs, experiment=parent.get("experiment", "sbu"),
        profile=parent.get("profile") or None, data_args=parent.get("data_args", ""),
        baselines=read_baselines(baselines) if baselines else (), chance=chance, confirmed=groups,
        privacy=privacy_name(r.data.metrics for r in runs),
    )


def rebuild_report(experiment: str, sweep: str | None, locations, *, baselines: str | Path | None = None):
    """`raypriv pareto`: the report of `sweep` (default: the latest sweep of `experiment`), rebuilt from
    MLflow and logged again on its parent run. Returns (report, parent run, `RegisteredFront` or None)."""
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
    registered = publish_report(c, parent.info.run_id, report)
    return report, parent.info, registered
