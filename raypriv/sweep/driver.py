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
6. with `sweep.confirm` > 0, the confirmation stage (`raypriv.sweep.confirm`): the best screening
   configurations, the control arm and the baselines at the full protocol with several seeds, as
   fixed trials in a Tune experiment of their own (resumed on its own);
7. the Pareto report, rebuilt from MLflow and logged on the parent run (with a confirmation stage:
   the confirmed front, its description, its degraders in the Model Registry); the wall time of
   each stage and every trial's Ray + MLflow overhead, on the parent run.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import yaml

from raypriv.method.config import RunConfig
from raypriv.report.confirmed import privacy_label
from raypriv.sweep.config import SweepConfig, SweepSettings
from raypriv.sweep.plan import SweepPlan, identity, sweep_id
from raypriv.sweep.preflight import ResourceError, check_resources
from raypriv.sweep.tracking import Locations, redact, scoped_env, storage_exists

if TYPE_CHECKING:
    from raypriv.report.front import Report
    from raypriv.sweep.registry import RegisteredFront


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
    numbers: dict[str, int] = field(default_factory=dict)  # trial -> its number (the metrics' step)
    study_complete: int = 0  # COMPLETE trials in the Optuna study
    interrupted: bool = False  # stopped (Ctrl+C) before every trial ended: --resume continues it
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)  # setup, screen, confirm, report -> wall s
    confirmation: SweepOutcome | None = None  # the confirmation stage's trials, when it ran
    registered: RegisteredFront | None = None  # the confirmed front in the Model Registry
    ui_path: str = ""  # the parent run in the MLflow UI (`raypriv.sweep.tracking.ui_path`)

    @property
    def status(self) -> str:
        """The parent run's end status."""
        stages = [self] + ([self.confirmation] if self.confirmation else [])
        return ("KILLED" if any(s.interrupted for s in stages) else "FAILED" if any(s.errored for s in stages)
                else "FINISHED")


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
    root = data_root(config.run, synthetic, root)
    sweep = sweep_id(config, synthetic=synthetic, root=root)
    resume = prepare(sweep, locations, resume=resume, resume_if_exists=resume_if_exists, what="sweep",
                     missing=lambda: _changes_since(config, sweep, locations),
                     hint="change --seed (or the space) to start another",
                     also_exists=lambda: _study_exists(locations.optuna_storage, sweep))
    s = config.sweep
    echo(f"sweep {sweep}: {s.trials} trials, {s.concurrency} at a time, sampler {s.sampler}, seed {s.seed}"
         + (f"; then the best {s.confirm} confirmed with {s.replicates} seeds" if s.confirm else "") + f" ({config.source})")
    outcome = SweepOutcome(sweep, locations, None)
    with session(config.name, sweep, config.sweep, config.source, locations, role="sweep", params=_params(config, synthetic, root),
                 texts=_texts(config), synthetic=synthetic, root=root, echo=echo,
                 run=config.run, space=config.space) as (plan, mlflow_client):
        outcome.stage_seconds["setup"] = time.perf_counter() - started
        results = _tune(plan, config, locations, resume=resume, echo=echo)
        collect(results, config.sweep.trials, outcome)
        outcome.stage_seconds["screen"] = time.perf_counter() - started - outcome.stage_seconds["setup"]
        if s.confirm and not outcome.interrupted:
            from raypriv.sweep.confirm import run_confirmation

            begun = time.perf_counter()
            outcome.confirmation = run_confirmation(plan, config, locations, mlflow_client, synthetic=synthetic,
                                                    echo=echo)
            outcome.stage_seconds["confirm"] = time.perf_counter() - begun
    _report(outcome, plan, mlflow_client, baselines)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _params(config: SweepConfig, synthetic: bool, root: str | None) -> dict[str, object]:
    """The parent run's params (a resume with other values is refused: `_check_same_params`)."""
    s = config.sweep
    return {"experiment": config.name, "profile": config.profile or "", "sampler": s.sampler, "seed": s.seed,
            "trials": s.trials, "concurrency": s.concurrency, "workers": s.workers, "confirm": s.confirm,
            "replicates": s.replicates, "data_args": _data_args(synthetic, root), "source": config.source}


def _texts(config: SweepConfig) -> dict[str, object]:
    """The parent run's YAML artifacts: the space, the screening run config, the full-protocol one."""
    texts = {"space.yaml": {name: p.model_dump(mode="json") for name, p in config.space.items()},
             "base_config.yaml": config.run.model_dump(mode="json")}
    if config.confirm_run is not None:
        texts["confirm_config.yaml"] = config.confirm_run.model_dump(mode="json")
    return texts


def _report(outcome: SweepOutcome, plan: SweepPlan, mlflow_client, baselines: Path | None) -> None:
    """The report, rebuilt from MLflow and published; stage times and overheads on the parent run; its end."""
    from raypriv.sweep.space import study_trials
    from raypriv.sweep.tracking import publish_report, report_from_mlflow, ui_path

    begun = time.perf_counter()
    outcome.ui_path = ui_path(plan.experiment_id, plan.parent_run_id)
    where = outcome.locations
    outcome.report = report_from_mlflow(mlflow_client, plan.experiment_id, plan.parent_run_id, plan.sweep_id,
                                        where.report_dir(plan.sweep_id), baselines=baselines)
    outcome.registered = publish_report(mlflow_client, plan.parent_run_id, outcome.report)
    outcome.stage_seconds["report"] = time.perf_counter() - begun
    _log_overhead(mlflow_client, plan.parent_run_id, outcome)
    if outcome.confirmation:
        _log_overhead(mlflow_client, plan.parent_run_id, outcome.confirmation, prefix="confirm/")
    _log_stages(mlflow_client, plan.parent_run_id, outcome.stage_seconds)
    mlflow_client.set_terminated(plan.parent_run_id, status=outcome.status)
    trials = study_trials(where.optuna_storage, plan.sweep_id) or []
    outcome.study_complete = sum(1 for t in trials if t.state.name == "COMPLETE")


def data_root(run: RunConfig, synthetic: bool, root: str | None) -> str | None:
    """The real data's root (None with --synthetic), checked before Ray starts: every trial would fail on it."""
    if synthetic:
        return None
    root = root or os.environ.get("RAYPRIV_SBU_ROOT")
    from raypriv.method.data import build_dataset

    try:
        build_dataset(run.data.dataset, "train", synthetic=False, preset=run.data.preset, seed=run.data.seed, root=root)
    except (FileNotFoundError, ValueError) as err:
        hint = "" if "--synthetic" in str(err) else "; pass --synthetic to sweep on the embedded stand-in"
        raise SweepError(f"{err}{hint}") from None
    except (PermissionError, RuntimeError) as err:  # an s3:// root: credentials, endpoint
        raise SweepError(str(err)) from None
    return root


def prepare(run_id: str, locations: Locations, *, resume: bool, resume_if_exists: bool, what: str,
            missing: Callable[[], str | None], hint: str, also_exists: Callable[[], bool] = lambda: False) -> bool:
    """Check the cluster inputs and whether `run_id` exists: returns whether to resume it; refuses a
    new run over an old one and a resume of nothing (`missing()` may say what changed instead)."""
    _check_cluster(locations)
    tune_path = f"{locations.tune_storage}/{run_id}"
    exists = storage_exists(tune_path) or also_exists()
    if resume_if_exists:
        resume = exists
    if exists and not resume:
        raise SweepError(f"{what} {run_id} already exists ({tune_path}); pass --resume to continue it, or {hint}")
    if resume and not exists:
        raise SweepError(missing() or f"nothing to resume: no {what} {run_id} under {locations.home} (same profile, "
                                      f"--set, --sampler and --seed as the {what} you mean?)")
    locations.home.mkdir(parents=True, exist_ok=True)
    return resume and storage_exists(tune_path)


@contextlib.contextmanager
def session(name: str, run_id: str, settings: SweepSettings, source: str, locations: Locations, *, role: str,
            params: dict, texts: dict, synthetic: bool, root: str | None, echo: Callable[[str], None],
            run: RunConfig | None = None, space: dict | None = None) -> Iterator[tuple[SweepPlan, object]]:
    """Ray (connected or local), the resource check, MLflow's experiment and parent run: the plan
    every trial receives, and the MLflow client, for the block."""
    with _ray(echo) as ray:
        resources = ray.cluster_resources()
        use_gpu = settings.use_gpu if settings.use_gpu is not None else resources.get("GPU", 0) > 0
        try:
            check_resources(settings, resources, use_gpu=use_gpu, source=source)
        except ResourceError as err:
            raise SweepError(str(err)) from None
        yield _start_tracking(name, run_id, settings, locations, role=role, params=params, texts=texts,
                              synthetic=synthetic, root=root, use_gpu=use_gpu, run=run, space=space or {})


def collect(results, expected: int, outcome: SweepOutcome) -> None:
    """Tune's results into the outcome: which trials errored, diverged, and their numbers and overheads."""
    from raypriv.sweep.trial import SPEC, TRIAL_NUMBER

    outcome.interrupted = results.num_terminated + results.num_errors < expected
    for result in results:
        name = result.path and Path(result.path).name
        config = result.config or {}
        number = config.get(TRIAL_NUMBER, (config.get(SPEC) or {}).get("number"))
        if name and number is not None:
            outcome.numbers[name] = int(number)
        if result.error is not None:
            outcome.errored.append(name)
        elif result.metrics.get("diverged"):
            outcome.diverged.append(name)
        elif "overhead_seconds" in result.metrics:
            outcome.overhead_seconds[name] = result.metrics["overhead_seconds"]
            outcome.trial_seconds[name] = result.metrics["trial_seconds"]


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


def _start_tracking(name: str, run_id: str, settings: SweepSettings, locations: Locations, *, role: str,
                    params: dict, texts: dict, synthetic: bool, root: str | None, use_gpu: bool,
                    run: RunConfig | None, space: dict) -> tuple[SweepPlan, object]:
    """MLflow experiment + parent run (created or found again) -> the plan every trial receives.

    Against a server, a failure here (typically its S3 artifact store: missing bucket, no
    credentials) ends the run after a few seconds of retries, not MLflow's default four minutes.
    """
    from mlflow.entities import Param
    from mlflow.exceptions import MlflowException

    from raypriv.sweep.tracking import client, ensure_experiment, provenance_tags, start_parent

    try:
        with scoped_env(MLFLOW_HTTP_REQUEST_MAX_RETRIES="2", MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR="1"):
            mlflow_client = client(locations.tracking_uri)
            experiment_id = ensure_experiment(mlflow_client, name, locations.artifact_root)
            tags = provenance_tags()
            extra = {"raypriv.optuna_study": run_id, "raypriv.optuna_storage": redact(locations.optuna_storage)} \
                if role == "sweep" else {}
            parent_run_id = start_parent(mlflow_client, experiment_id, run_id, {**tags, **extra}, role=role)
            _check_same_params(mlflow_client.get_run(parent_run_id).data.params, params, role, run_id)
            mlflow_client.log_batch(parent_run_id, params=[Param(k, str(v)) for k, v in params.items()])
            for file, content in texts.items():
                mlflow_client.log_text(parent_run_id, yaml.safe_dump(content, sort_keys=False), file)
    except MlflowException as err:
        cause = re.sub(r"://[^/@\s]+@", "://***@", str(err).splitlines()[0])[:400]
        raise SweepError(
            f"MLflow at {redact(locations.tracking_uri)} failed while creating the {role}'s parent run and its first "
            f"artifact: {cause}. For a server with proxied artifacts, check that its --artifacts-destination bucket "
            f"exists and that the server has S3 credentials (its log names the S3 error)") from None
    train_storage = locations.train_storage(run_id)
    if "://" not in train_storage:
        Path(train_storage).mkdir(parents=True, exist_ok=True)
    from raypriv.sweep.tracking import TAG_DATA

    plan = SweepPlan(sweep_id=run_id, name=name, settings=settings, run=run, space=space, synthetic=synthetic,
                     root=root, tracking_uri=locations.tracking_uri, experiment_id=experiment_id,
                     parent_run_id=parent_run_id, tags={**tags, TAG_DATA: "synthetic" if synthetic else str(root)},
                     train_storage=train_storage, use_gpu=use_gpu)
    return plan, mlflow_client


def _check_same_params(logged: dict[str, str], params: dict, role: str, run_id: str) -> None:
    """A resumed sweep or comparison keeps the options it was started with (MLflow params are write-once)."""
    changed = [f"--{k} {logged[k]} (now {v})" for k, v in params.items() if k in logged and logged[k] != str(v)]
    if changed:
        raise SweepError(f"{role} {run_id} was started with {', '.join(changed)}; resume it with the same options")


def _keep_credentials_out_of_runtime_envs() -> None:
    """Ray Tune (2.60, `ray.tune.execution.class_cache`) copies AWS_* credentials from the driver's
    environment into every trial actor's runtime_env, which Ray's runtime_env agent writes to its log
    in plaintext (found by tests/test_reliability_sweep.py). Trials get credentials the way every other
    process on a node does: inherited from the local Ray raylet on a laptop, from the node (instance
    role, Kubernetes Secret) on a cluster (cluster/README.md)."""
    from ray.tune.execution import class_cache

    class_cache.ENV_VARS_TO_PROPAGATE = {n for n in class_cache.ENV_VARS_TO_PROPAGATE if not n.startswith("AWS_")}


def _trainable(plan: SweepPlan):
    from ray import tune

    from raypriv.sweep.trial import run_trial

    _keep_credentials_out_of_runtime_envs()
    return tune.with_resources(tune.with_parameters(run_trial, plan=plan), {"cpu": plan.settings.trial_cpus})


def _run_config(name: str, locations: Locations, reporter):
    from ray import tune

    return tune.RunConfig(name=name, storage_path=locations.tune_storage, verbose=1,
                          failure_config=tune.FailureConfig(max_failures=0),  # retries happen in Ray Train
                          progress_reporter=reporter)


def privacy_column(run: RunConfig | None) -> str:
    """The privacy score's name for trials of `run`'s data: A_B^N, or cMAP^N for multi-label privacy labels."""
    from raypriv.method.data import DATASET_INFO, privacy_dataset_of

    task = DATASET_INFO[privacy_dataset_of(run.data)].privacy_task if run is not None else None
    return privacy_label(task.metric if task is not None else "accuracy")


def _reporter(parameters: list[str], privacy: str):
    from ray import tune

    return tune.CLIReporter(metric_columns={"iteration": "it", "target_acc": "A_T", "privacy_acc": privacy},
                            parameter_columns=parameters, max_report_frequency=30, sort_by_metric=False)


def _tune(plan: SweepPlan, config: SweepConfig, locations: Locations, *, resume: bool, echo: Callable[[str], None]):
    """The sweep's screening trials: Optuna (multi-objective) samples each one's configuration."""
    import optuna
    from ray import tune

    from raypriv.sweep.space import make_sampler, to_optuna
    from raypriv.sweep.trial import OBJECTIVES, FailingOptunaSearch, OptunaSpace, tune_trial_name

    s = plan.settings
    trainable = _trainable(plan)
    path = f"{locations.tune_storage}/{plan.sweep_id}"
    # Tune's classic table (RAY_AIR_NEW_OUTPUT=0) is the one that takes named metric columns.
    with scoped_env(RAY_AIR_NEW_OUTPUT="0"):
        if resume:
            echo(f"resuming the Tune experiment at {path}")
            # Unfinished trials continue; failed ones stay failed, as Optuna has already been told
            # (worker failures are retried inside a trial, by Ray Train's FailureConfig).
            return tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=False).fit()
        privacy = privacy_column(plan.run)
        storage = optuna.storages.RDBStorage(locations.optuna_storage)
        study = optuna.create_study(storage=storage, study_name=plan.sweep_id, load_if_exists=True,
                                    directions=["maximize", "minimize"])
        study.set_metric_names(["A_T", privacy])
        study.set_user_attr("mlflow_parent_run_id", plan.parent_run_id)
        study.set_user_attr("source", config.source)
        study.set_user_attr("identity", identity(config))  # explains a refused --resume
        searcher = FailingOptunaSearch(
            space=OptunaSpace(to_optuna(config.space)), metric=list(OBJECTIVES), mode=list(OBJECTIVES.values()),
            sampler=make_sampler(s.sampler, seed=s.seed, trials=s.trials, concurrency=s.concurrency),
            study_name=plan.sweep_id, storage=storage,
        )
        return tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=s.trials, max_concurrent_trials=s.concurrency,
                                        trial_name_creator=tune_trial_name, trial_dirname_creator=tune_trial_name),
            run_config=_run_config(plan.sweep_id, locations, _reporter(list(config.space), privacy)),
        ).fit()


def tune_fixed(plan: SweepPlan, specs: list, locations: Locations, *, resume: bool, echo: Callable[[str], None],
               experiment: str | None = None):
    """Trials fixed in advance (a comparison's arm x seed runs, a sweep's confirmation stage): one Tune
    trial per `TrialSpec`, in the Tune experiment `experiment` (default: the plan's id). On `--resume`
    finished trials stay as they are; unfinished and failed ones run (again)."""
    from ray import tune

    from raypriv.sweep.trial import SPEC, tune_trial_name

    trainable = _trainable(plan)
    name = experiment or plan.sweep_id
    path = f"{locations.tune_storage}/{name}"
    params = list(dict.fromkeys(k for spec in specs for k in spec.params))
    with scoped_env(RAY_AIR_NEW_OUTPUT="0"):
        if resume:
            echo(f"resuming the Tune experiment at {path}")
            return tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True).fit()
        return tune.Tuner(
            trainable,
            param_space={SPEC: tune.grid_search([spec.model_dump(mode="json") for spec in specs])},
            tune_config=tune.TuneConfig(max_concurrent_trials=plan.settings.concurrency,
                                        trial_name_creator=tune_trial_name, trial_dirname_creator=tune_trial_name),
            run_config=_run_config(name, locations, _reporter([f"{SPEC}/params/{k}" for k in params],
                                                              privacy_column(specs[0].run if specs else None))),
        ).fit()


def _log_overhead(mlflow_client, parent_run_id: str, outcome: SweepOutcome, prefix: str = "") -> None:
    """Per trial, the sweep's cost around training (Ray start/stop, MLflow), on the parent run
    (step = the trial's number; `prefix` names the stage, e.g. `confirm/`)."""
    from mlflow.entities import Metric

    metrics = []
    for name, overhead in outcome.overhead_seconds.items():
        step = outcome.numbers.get(name, 0)
        metrics += [Metric(f"{prefix}trial_overhead_seconds", overhead, 0, step),
                    Metric(f"{prefix}trial_seconds", outcome.trial_seconds[name], 0, step)]
    if metrics:
        mlflow_client.log_batch(parent_run_id, metrics=metrics)


def _log_stages(mlflow_client, parent_run_id: str, stage_seconds: dict[str, float]) -> None:
    """Each stage's wall time (`stage_seconds/<stage>`) on the parent run; a resume logs a new step."""
    from mlflow.entities import Metric

    step = len(mlflow_client.get_metric_history(parent_run_id, "stage_seconds/setup"))
    mlflow_client.log_batch(parent_run_id, metrics=[Metric(f"stage_seconds/{k}", v, 0, step)
                                                    for k, v in stage_seconds.items()])
