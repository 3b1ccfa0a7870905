"""`run_sweep`: the Ray Tune driver of a sweep, embedded on one machine or on a cluster.

Order of events, each step failing early and clearly:
1. real data present (or --synthetic), the sweep id; cluster inputs (`RAY_ADDRESS`, the MLflow
   server, an s3:// Ray storage: `raypriv.sweep.preflight`); whether the sweep is new or resumed;
2. Ray: `RAY_ADDRESS` set -> connect (inside `ray job submit`, Ray sets it: never a second Ray,
   never `num_cpus`); else start a local Ray with every service on 127.0.0.1;
3. the resource-fit check (trials x (Tune function + Train workers) <= cluster CPUs / GPUs);
4. MLflow: the search space's experiment and the sweep's parent run; Optuna: the sweep's study;
5. Tune: `NumberedOptunaSearch` (multi-objective: A_T max, A_B^N min), one `run_trial` per trial,
   a progress table with A_T and A_B^N columns; `--resume` restores the Tune experiment;
6. the Pareto report, rebuilt from MLflow and logged on the parent run.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from raypriv.sweep.config import SweepConfig
from raypriv.sweep.plan import ResourceError, SweepPlan, check_resources, identity, sweep_id
from raypriv.sweep.tracking import Locations, redact, scoped_env, storage_exists

if TYPE_CHECKING:
    from raypriv.report.front import Report


class SweepError(RuntimeError):
    """The sweep cannot start (or resume); the message says why and what to do."""


@dataclass
class SweepOutcome:
    sweep_id: str
    locations: Locations
    report: Report | None
    errored: list[str] = field(default_factory=list)  # trial names
    diverged: list[str] = field(default_factory=list)  # trials whose loss became NaN/inf: FAILED, not retried
    overhead_seconds: dict[str, float] = field(default_factory=dict)  # trial -> wall time minus trainer time
    trial_seconds: dict[str, float] = field(default_factory=dict)
    study_complete: int = 0  # COMPLETE trials in the Optuna study
    interrupted: bool = False  # stopped (Ctrl+C) before every trial ended: --resume continues it
    seconds: float = 0.0


def run_sweep(
    config: SweepConfig,
    *,
    synthetic: bool,
    root: str | None = None,
    locations: Locations,
    resume: bool = False,
    resume_if_exists: bool = False,
    baselines: Path | None = None,
    echo: Callable[[str], None] = print,
) -> SweepOutcome:
    """Run (or resume) the sweep `config` and return its Pareto report.

    `resume_if_exists` resumes the sweep when it exists and starts it otherwise: the same command
    can be submitted again and again (a RayJob's retries) without losing or duplicating trials.
    """
    started = time.perf_counter()
    root = None if synthetic else (root or os.environ.get("RAYPRIV_SBU_ROOT"))
    if not synthetic:
        _check_data(config, root)
    sweep = sweep_id(config, synthetic=synthetic, root=root)
    _check_cluster(locations)
    tune_path = f"{locations.tune_storage}/{sweep}"
    exists = storage_exists(tune_path) or _study_exists(locations.optuna_storage, sweep)
    if resume_if_exists:
        resume = exists
    if exists and not resume:
        raise SweepError(f"sweep {sweep} already exists ({tune_path}); pass --resume to continue it, "
                         f"or change --seed (or the space) to start another")
    if resume and not exists:
        changed = _changes_since(config, sweep, locations)
        if changed:
            raise SweepError(changed)
        raise SweepError(f"nothing to resume: no sweep {sweep} under {locations.home} (same profile, --set, "
                         f"--sampler and --seed as the sweep you mean?)")
    locations.home.mkdir(parents=True, exist_ok=True)
    echo(f"sweep {sweep}: {config.sweep.trials} trials, {config.sweep.concurrency} at a time, sampler "
         f"{config.sweep.sampler}, seed {config.sweep.seed} ({config.source})")

    with _ray(echo) as ray:
        use_gpu = config.sweep.use_gpu if config.sweep.use_gpu is not None else ray.cluster_resources().get("GPU", 0) > 0
        try:
            check_resources(config, ray.cluster_resources(), use_gpu=use_gpu)
        except ResourceError as err:
            raise SweepError(str(err)) from None
        plan, mlflow_client = _start_tracking(config, sweep, locations, synthetic=synthetic, root=root, use_gpu=use_gpu)
        results = _tune(plan, locations, resume=resume and storage_exists(tune_path), echo=echo)

    from raypriv.sweep.space import study_trials
    from raypriv.sweep.tracking import publish_report, report_from_mlflow

    outcome = SweepOutcome(sweep, locations, None)
    outcome.interrupted = results.num_terminated + results.num_errors < config.sweep.trials
    for result in results:
        name = result.path and Path(result.path).name
        if result.error is not None:
            outcome.errored.append(name)
        elif result.metrics.get("diverged"):
            outcome.diverged.append(name)
        elif "overhead_seconds" in result.metrics:
            outcome.overhead_seconds[name] = result.metrics["overhead_seconds"]
            outcome.trial_seconds[name] = result.metrics["trial_seconds"]
    _log_overhead(mlflow_client, plan.parent_run_id, outcome)
    outcome.report = report_from_mlflow(mlflow_client, plan.experiment_id, plan.parent_run_id, sweep,
                                        locations.report_dir(sweep), baselines=baselines)
    publish_report(mlflow_client, plan.parent_run_id, outcome.report)
    status = "KILLED" if outcome.interrupted else "FAILED" if outcome.errored else "FINISHED"
    mlflow_client.set_terminated(plan.parent_run_id, status=status)
    outcome.study_complete = sum(1 for t in study_trials(locations.optuna_storage, sweep) if t.state.name == "COMPLETE")
    outcome.seconds = time.perf_counter() - started
    return outcome


def _flat(value, key: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        return {k: v for name, item in value.items() for k, v in _flat(item, f"{key}.{name}" if key else name).items()}
    return {key: value}


def _changes_since(config: SweepConfig, sweep: str, locations: Locations) -> str | None:
    """For --resume of a sweep id that does not exist: if a sweep of the same space, profile, sampler and
    seed exists with another run config or space, the message listing what changed; else None."""
    from raypriv.sweep.space import study_attrs

    prefix = sweep.rsplit("-", 1)[0] + "-"
    stored = {name: attrs["identity"] for name, attrs in study_attrs(locations.optuna_storage, prefix).items()
              if "identity" in attrs}
    if not stored:
        return None
    name, old = sorted(stored.items())[-1]
    before, now = _flat(old), _flat(identity(config))
    diffs = [f"{k}: {before.get(k, '(absent)')!r} -> {now.get(k, '(absent)')!r}"
             for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)]
    return (f"cannot resume: the run config or search space differs from sweep {name}'s ({len(diffs)} change(s): "
            f"{'; '.join(diffs[:12])}{'; ...' if len(diffs) > 12 else ''}). Resume with the same YAML and --set "
            f"values, or start a new sweep without --resume")


def _data_args(synthetic: bool, root: str | None) -> str:
    return "--synthetic" if synthetic else (f"--root {root}" if root else "")


def _check_data(config: SweepConfig, root: str | None) -> None:
    """Real data must be there before Ray starts (every trial would fail on it otherwise)."""
    from raypriv.method.data import build_dataset

    try:
        build_dataset(config.run.data.dataset, "train", synthetic=False, preset=config.run.data.preset,
                      seed=config.run.data.seed, root=root)
    except (FileNotFoundError, ValueError) as err:
        hint = "" if "--synthetic" in str(err) else "; pass --synthetic to sweep on the embedded stand-in"
        raise SweepError(f"{err}{hint}") from None
    except (PermissionError, RuntimeError) as err:  # an s3:// root: credentials, endpoint
        raise SweepError(str(err)) from None


def _check_cluster(locations: Locations) -> None:
    """RAY_ADDRESS, the MLflow server and an s3:// Ray storage, before anything starts or is written."""
    from raypriv.sweep.preflight import ClusterError, check_object_store, check_ray_address, check_tracking_server

    try:
        if os.environ.get("RAY_ADDRESS"):
            check_ray_address(os.environ["RAY_ADDRESS"])
        check_tracking_server(locations.tracking_uri)
        check_object_store(locations.ray_root, "writing Ray checkpoints (--ray-storage) to")
    except ClusterError as err:
        raise SweepError(str(err)) from None


def _warn_secret_env(ray, echo: Callable[[str], None]) -> None:
    """Inside a job: name (never show) env_vars of its runtime_env that look like secrets."""
    from raypriv.sweep.preflight import secret_env_names

    try:
        env_vars = (ray.get_runtime_context().runtime_env or {}).get("env_vars") or {}
    except Exception:  # no runtime_env to inspect: nothing to warn about
        return
    names = secret_env_names(env_vars)
    if names:
        echo(f"WARNING: the job's runtime_env passes {', '.join(names)} as env_vars; Ray shows runtime_env in "
             f"plaintext in the dashboard and job logs. Give the nodes their credentials instead (instance role, "
             f"Kubernetes Secret, token file; cluster/README.md)")


def _study_exists(storage: str, sweep: str) -> bool:
    from raypriv.sweep.space import study_trials

    return study_trials(storage, sweep) is not None


@contextlib.contextmanager
def _ray(echo: Callable[[str], None]) -> Iterator[object]:
    """Ray, connected to `RAY_ADDRESS` when set, else a local instance on 127.0.0.1 (stopped after)."""
    started_here = not os.environ.get("RAY_ADDRESS")
    if started_here:
        # Ray binds every service to the routable address on Linux unless this is 0 when Ray is
        # imported; with it, the local instance listens on 127.0.0.1 only (measured, Ray 2.60).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if ray.is_initialized():
        yield ray
        return
    if started_here:
        # The dashboard (on 127.0.0.1) serves the State API, which Ray Train's placement-group cleaner
        # needs to free a dead trial's workers. One machine has no preemption to watch for, and a
        # faster controller poll cuts seconds from every TorchTrainer start and stop (measured).
        port = _free_port()
        ray.init(include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=port, log_to_driver=True,
                 logging_level="WARNING", runtime_env={"env_vars": {
                     "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0", "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5"}})
        echo(f"local Ray on {ray.util.get_node_ip_address()}: {ray.cluster_resources().get('CPU', 0):g} CPUs, "
             f"{ray.cluster_resources().get('GPU', 0):g} GPUs; dashboard http://127.0.0.1:{port}")
    else:
        ray.init(logging_level="WARNING")  # the cluster's resources, never num_cpus
        echo(f"Ray cluster at {os.environ['RAY_ADDRESS']}: {ray.cluster_resources().get('CPU', 0):g} CPUs, "
             f"{ray.cluster_resources().get('GPU', 0):g} GPUs")
        _warn_secret_env(ray, echo)
    try:
        yield ray
    finally:
        ray.shutdown()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_tracking(config: SweepConfig, sweep: str, locations: Locations, *, synthetic: bool, root: str | None,
                    use_gpu: bool):
    """MLflow experiment + parent run (created or found again) -> the plan every trial receives.

    Against a server, a failure here (typically its S3 artifact store: missing bucket, no
    credentials) ends the sweep after a few seconds of retries, not MLflow's default four minutes.
    """
    from mlflow.exceptions import MlflowException

    try:
        with scoped_env(MLFLOW_HTTP_REQUEST_MAX_RETRIES="2", MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR="1"):
            return _create_parent(config, sweep, locations, synthetic=synthetic, root=root, use_gpu=use_gpu)
    except MlflowException as err:
        cause = re.sub(r"://[^/@\s]+@", "://***@", str(err).splitlines()[0])[:400]
        raise SweepError(
            f"MLflow at {redact(locations.tracking_uri)} failed while creating the sweep's parent run and its first "
            f"artifact: {cause}. For a server with proxied artifacts, check that its --artifacts-destination bucket "
            f"exists and that the server has S3 credentials (its log names the S3 error)") from None


def _create_parent(config: SweepConfig, sweep: str, locations: Locations, *, synthetic: bool, root: str | None,
                   use_gpu: bool):
    import yaml
    from mlflow.entities import Param

    from raypriv.sweep.tracking import client, ensure_experiment, provenance_tags, start_parent

    mlflow_client = client(locations.tracking_uri)
    experiment_id = ensure_experiment(mlflow_client, config.name, locations.artifact_root)
    tags = provenance_tags()
    parent_run_id = start_parent(mlflow_client, experiment_id, sweep, {
        **tags, "raypriv.optuna_study": sweep, "raypriv.optuna_storage": redact(locations.optuna_storage),
    })
    s = config.sweep
    params = {"experiment": config.name, "profile": config.profile or "", "sampler": s.sampler, "seed": s.seed,
              "trials": s.trials, "concurrency": s.concurrency, "workers": s.workers,
              "data_args": _data_args(synthetic, root), "source": config.source}
    mlflow_client.log_batch(parent_run_id, params=[Param(k, str(v)) for k, v in params.items()])
    mlflow_client.log_text(parent_run_id, yaml.safe_dump(
        {name: p.model_dump(mode="json") for name, p in config.space.items()}, sort_keys=False), "space.yaml")
    mlflow_client.log_text(parent_run_id, yaml.safe_dump(config.run.model_dump(mode="json"), sort_keys=False),
                           "base_config.yaml")
    train_storage = locations.train_storage(sweep)
    if "://" not in train_storage:
        Path(train_storage).mkdir(parents=True, exist_ok=True)
    plan = SweepPlan(sweep_id=sweep, config=config, synthetic=synthetic, root=root, tracking_uri=locations.tracking_uri,
                     experiment_id=experiment_id, parent_run_id=parent_run_id, tags=tags,
                     train_storage=train_storage, use_gpu=use_gpu)
    return plan, mlflow_client


def _keep_credentials_out_of_runtime_envs() -> None:
    """Ray Tune (2.60, `ray.tune.execution.class_cache`) copies AWS_* credentials from the driver's
    environment into every trial actor's runtime_env, which Ray's runtime_env agent writes to its log
    in plaintext (found by tests/test_reliability_sweep.py). Trials get credentials the way every other
    process on a node does: inherited from the local Ray raylet on a laptop, from the node (instance
    role, Kubernetes Secret) on a cluster (cluster/README.md)."""
    from ray.tune.execution import class_cache

    class_cache.ENV_VARS_TO_PROPAGATE = {n for n in class_cache.ENV_VARS_TO_PROPAGATE if not n.startswith("AWS_")}


def _tune(plan: SweepPlan, locations: Locations, *, resume: bool, echo: Callable[[str], None]):
    import optuna
    from ray import tune

    _keep_credentials_out_of_runtime_envs()

    from raypriv.sweep.space import make_sampler, to_optuna
    from raypriv.sweep.trial import OBJECTIVES, NumberedOptunaSearch, run_trial, tune_trial_name

    s = plan.config.sweep
    trainable = tune.with_resources(tune.with_parameters(run_trial, plan=plan), {"cpu": s.trial_cpus})
    path = f"{locations.tune_storage}/{plan.sweep_id}"
    # Tune's classic table (RAY_AIR_NEW_OUTPUT=0) is the one that takes named metric columns.
    with scoped_env(RAY_AIR_NEW_OUTPUT="0"):
        if resume:
            echo(f"resuming the Tune experiment at {path}")
            # Unfinished trials continue; failed ones stay failed, as Optuna has already been told
            # (worker failures are retried inside a trial, by Ray Train's FailureConfig).
            tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=False)
        else:
            storage = optuna.storages.RDBStorage(locations.optuna_storage)
            study = optuna.create_study(storage=storage, study_name=plan.sweep_id, load_if_exists=True,
                                        directions=["maximize", "minimize"])
            study.set_metric_names(["A_T", "A_B^N"])
            study.set_user_attr("mlflow_parent_run_id", plan.parent_run_id)
            study.set_user_attr("source", plan.config.source)
            study.set_user_attr("identity", identity(plan.config))  # explains a refused --resume
            searcher = NumberedOptunaSearch(
                space=to_optuna(plan.config.space), metric=list(OBJECTIVES), mode=list(OBJECTIVES.values()),
                sampler=make_sampler(s.sampler, seed=s.seed, trials=s.trials, concurrency=s.concurrency),
                study_name=plan.sweep_id, storage=storage,
            )
            reporter = tune.CLIReporter(
                metric_columns={"iteration": "it", "target_acc": "A_T", "privacy_acc": "A_B^N"},
                parameter_columns=list(plan.config.space), max_report_frequency=30, sort_by_metric=False,
            )
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=searcher, num_samples=s.trials, max_concurrent_trials=s.concurrency,
                    trial_name_creator=tune_trial_name, trial_dirname_creator=tune_trial_name,
                ),
                run_config=tune.RunConfig(
                    name=plan.sweep_id, storage_path=locations.tune_storage, verbose=1,
                    failure_config=tune.FailureConfig(max_failures=0),  # retries happen in Ray Train
                    progress_reporter=reporter,
                ),
            )
        return tuner.fit()


def _log_overhead(mlflow_client, parent_run_id: str, outcome: SweepOutcome) -> None:
    """Per trial, the sweep's cost around training (Ray start/stop, MLflow), on the parent run."""
    from mlflow.entities import Metric

    metrics = []
    for name, overhead in outcome.overhead_seconds.items():
        step = int(name.rsplit("_", 1)[-1])
        metrics += [Metric("trial_overhead_seconds", overhead, 0, step),
                    Metric("trial_seconds", outcome.trial_seconds[name], 0, step)]
    if metrics:
        mlflow_client.log_batch(parent_run_id, metrics=metrics)
