"""A sweep's confirmation stage: the K best screening configurations re-run at the full protocol (the
profile without its `trial:` fidelity) with R seeds each, beside the control arm and the baselines
at the same seeds. They are fixed trials on the screening's machinery (`tune_fixed`: Tune trials,
TorchTrainer workers, MLflow child runs under the sweep's parent run) in a Tune experiment of their
own, `<sweep>-confirm`, so `--resume` continues whichever stage was interrupted. Optuna never sees
these runs: its study holds the screening results only.

- Which K: non-dominated sorting of the complete screening trials, crowding distance within a rank
  (`raypriv.report.pareto.select_best`); fewer when fewer completed.
- Seeds: the full-protocol run config's `seed` and the R - 1 after it, the same for every
  configuration, the control and the baselines, so their differences are paired by seed.
- Names and tags: `trial_0003_s1` (`raypriv.stage` = confirm, `raypriv.confirms` = trial_0003),
  `no_game_s1` (control), `raw_s1` (baseline, synthetic data only: the baselines need its masks);
  all carry `raypriv.seed` and `raypriv.arm` (what they replicate).
- Cache: a control or baseline run depends on nothing but its config digest (the run config, and
  the method for a baseline) and its data. When the experiment already holds a FINISHED one
  (another sweep's), its metrics are recorded as a child run tagged `raypriv.cached_from` = that
  run's id instead of computing it again; its artifacts stay on the original run.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

from raypriv.method.config import RunConfig, merge, parse_run_config
from raypriv.report.front import TrialRecord
from raypriv.report.pareto import select_best
from raypriv.sweep.config import SweepConfig, apply_params
from raypriv.sweep.driver import SweepOutcome, collect, tune_fixed
from raypriv.sweep.plan import SweepPlan, TrialSpec, spec_digest, trial_name
from raypriv.sweep.tracking import (TAG_ARM, TAG_CACHED, TAG_CONFIRMS, TAG_DATA, TAG_DIGEST, TAG_FULL_BUDGET,
                                    TAG_NUMBER, TAG_PARENT, TAG_ROLE, TAG_SEED, TAG_STAGE, TAG_SWEEP, TAG_TRIAL,
                                    Locations, child_runs, records_from_runs)

CONFIRM_SUFFIX = "-confirm"  # the stage's Tune experiment: <sweep>-confirm
CACHED_STAGES = ("control", "baseline")


def choose(records: Sequence[TrialRecord], k: int) -> list[TrialRecord]:
    """The k best complete screening trials (non-dominated sorting, then crowding distance)."""
    complete = [r for r in records if r.complete]
    return [complete[i] for i in select_best([r.target_acc for r in complete], [r.privacy_acc for r in complete], k)]


def confirmation_specs(config: SweepConfig, chosen: Sequence[tuple[str, dict]], *, synthetic: bool) -> list[TrialSpec]:
    """Every run of the stage: each chosen (screening trial, sampled parameters) at each seed, then the
    control arm at each seed, then (on synthetic data) each baseline at each seed."""
    run, settings = config.confirm_run, config.sweep
    seeds = range(run.seed, run.seed + settings.replicates)
    specs: list[TrialSpec] = []

    def add(name: str, params: dict, run: RunConfig, tags: dict[str, str], baseline: str | None = None) -> None:
        for seed in seeds:
            specs.append(TrialSpec(name=f"{name}_s{seed}", number=len(specs), params=params, baseline=baseline,
                                   run=_seeded(run, seed, data=baseline is not None),
                                   tags={**tags, TAG_ARM: name, TAG_SEED: str(seed)}))

    for trial, params in chosen:
        add(trial, params, apply_params(run, config.space, params, source=f"{config.source}: confirming {trial}"),
            {TAG_STAGE: "confirm", TAG_CONFIRMS: trial})
    if config.control_run is not None:
        add(settings.control_arm, {"arm": settings.control_arm}, config.control_run, {TAG_STAGE: "control"})
    for method in settings.confirm_baselines if synthetic else ():
        add(method, {"baseline": method}, run, {TAG_STAGE: "baseline"}, baseline=method)
    return specs


def _seeded(run: RunConfig, seed: int, *, data: bool) -> RunConfig:
    """`run` at `seed`; with `data` the synthetic clips' seed too (a baseline draws both with one seed)."""
    return parse_run_config(merge(run.model_dump(mode="json"), {"seed": seed, **({"data": {"seed": seed}} if data else {})}))


def run_confirmation(plan: SweepPlan, config: SweepConfig, locations: Locations, mlflow_client, *, synthetic: bool,
                     echo: Callable[[str], None]) -> SweepOutcome | None:
    """Run (or resume, when its Tune experiment can be restored) the confirmation stage; None when no
    screening trial completed, so there is nothing to confirm."""
    from ray import tune

    experiment = plan.sweep_id + CONFIRM_SUFFIX
    resume = tune.Tuner.can_restore(f"{locations.tune_storage}/{experiment}")
    specs: list[TrialSpec] = []
    if not resume:
        chosen = _chosen(config, plan, locations, mlflow_client)
        if not chosen:
            echo("confirmation: no complete screening trial to confirm")
            return None
        planned = confirmation_specs(config, chosen, synthetic=synthetic)
        specs = reuse_cached(mlflow_client, plan, planned, echo)
        s = config.sweep
        echo(f"confirmation: {', '.join(t for t, _ in chosen)} x {s.replicates} seeds at the full protocol"
             + (f", control {s.control_arm}" if config.control_run else "")
             + (f", baselines {', '.join(s.confirm_baselines)}" if synthetic else ", no baselines (real data: they need "
                "the synthetic set's masks)") + f": {len(specs)} runs, {len(planned) - len(specs)} reused")
    outcome = SweepOutcome(plan.sweep_id, locations, None)
    if specs or resume:
        results = tune_fixed(plan, specs, locations, resume=resume, echo=echo, experiment=experiment)
        collect(results, len(results) if resume else len(specs), outcome)
    return outcome


def _chosen(config: SweepConfig, plan: SweepPlan, locations: Locations, mlflow_client) -> list[tuple[str, dict]]:
    """The configurations to confirm: (screening trial, its sampled parameters as Optuna holds them,
    typed; MLflow's params are strings)."""
    from raypriv.sweep.space import study_trials

    records = records_from_runs(child_runs(mlflow_client, plan.experiment_id, plan.parent_run_id))
    sampled = {trial_name(t.number): t.params for t in study_trials(locations.optuna_storage, plan.sweep_id) or []
               if t.state.name == "COMPLETE"}
    return [(r.trial, sampled[r.trial]) for r in choose(records, config.sweep.confirm) if r.trial in sampled]


def reuse_cached(mlflow_client, plan: SweepPlan, specs: Sequence[TrialSpec], echo: Callable[[str], None]) -> list[TrialSpec]:
    """The specs still to run. A control or baseline spec that this sweep already recorded (FINISHED)
    is dropped; one whose digest has a FINISHED run elsewhere in the experiment, on the same data, is
    recorded as a child run tagged `raypriv.cached_from` and dropped."""
    mine = {r.data.tags.get(TAG_TRIAL): r for r in child_runs(mlflow_client, plan.experiment_id, plan.parent_run_id)}
    todo = []
    for spec in specs:
        if spec.tags[TAG_STAGE] not in CACHED_STAGES:
            todo.append(spec)
            continue
        earlier = mine.get(spec.name)
        if earlier is not None and earlier.info.status == "FINISHED":
            continue
        source = None if earlier is not None else cached_run(mlflow_client, plan, spec)
        if source is None:
            todo.append(spec)
            continue
        record_cached(mlflow_client, plan, spec, source)
        echo(f"{spec.name}: reusing run {source.info.run_id} of sweep {source.data.tags.get(TAG_SWEEP)} "
             f"(same config digest, {spec.tags[TAG_STAGE]})")
    return todo


def cached_run(mlflow_client, plan: SweepPlan, spec: TrialSpec):
    """The earliest FINISHED original run (not itself a reuse) of the same stage, digest and data, or None."""
    data = plan.tags.get(TAG_DATA, "")
    if "'" in data:  # not expressible in a filter string: compute it again
        return None
    runs = mlflow_client.search_runs(
        [plan.experiment_id], max_results=100, order_by=["attributes.start_time ASC"],
        filter_string=(f"tags.`{TAG_DIGEST}` = '{spec_digest(spec)}' and tags.`{TAG_STAGE}` = '{spec.tags[TAG_STAGE]}' "
                       f"and tags.`{TAG_DATA}` = '{data}' and attributes.status = 'FINISHED'"))
    return next((r for r in runs if TAG_CACHED not in r.data.tags and r.data.tags.get(TAG_FULL_BUDGET) == "true"), None)


def record_cached(mlflow_client, plan: SweepPlan, spec: TrialSpec, source) -> str:
    """A FINISHED child run of this sweep for `spec` holding `source`'s metrics and result tags."""
    from mlflow.entities import Metric, Param

    kept = {k: v for k, v in source.data.tags.items()
            if not k.startswith("mlflow.") and k not in (TAG_SWEEP, TAG_TRIAL, TAG_NUMBER, TAG_ROLE)}
    tags = {**kept, **spec.tags, TAG_PARENT: plan.parent_run_id, TAG_SWEEP: plan.sweep_id, TAG_ROLE: "trial",
            TAG_TRIAL: spec.name, TAG_NUMBER: str(spec.number), TAG_DIGEST: spec_digest(spec),
            TAG_CACHED: source.info.run_id}
    run_id = mlflow_client.create_run(plan.experiment_id, run_name=spec.name, tags=tags).info.run_id
    now = int(time.time() * 1000)
    mlflow_client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in source.data.metrics.items()],
                            params=[Param(k, str(v)) for k, v in sorted(spec.params.items())])
    mlflow_client.set_terminated(run_id, status="FINISHED")
    return run_id
