"""One trial of a sweep or a comparison, Tune side: the function that launches a `TorchTrainer` (whose
workers run `raypriv.sweep.worker.train_worker`), and the Optuna searcher of a sweep.

Ray Train V2 is the default in Ray 2.60: a Tune trial is a function that builds a `TorchTrainer`
and calls `fit()`, and `TuneReportCallback` forwards the worker's reports to Tune. Each report
carries A_T (`target_acc`) and A_B^N (`privacy_acc`) because Tune checks the searcher's metrics on
every result; per-iteration reports set them to NaN, so a trial that fails before its two-fold
evaluation is told to Optuna as FAIL, never COMPLETE with partial values.

Resumption: the Train run of a trial has a deterministic name (the trial's) under the sweep's
storage folder, and its workers report checkpoints of the loop as they go (and of the finished run
at the end). A retried worker (Ray Train's FailureConfig) or a trial resumed by `--resume` starts
from its latest checkpoint; either way it reuses its MLflow child run.

This module imports Ray Tune and Optuna: only the sweep driver and Ray's own processes import it.
"""

from __future__ import annotations

import math
import time
from typing import Any

import ray.train
from ray import tune
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.search.optuna import OptunaSearch

from raypriv.sweep.config import apply_params
from raypriv.sweep.distributed import ProcessGroupConfig
from raypriv.sweep.plan import SweepPlan, TrialSpec, trial_name
from raypriv.sweep.tracking import TAG_STAGE
from raypriv.sweep.worker import OBJECTIVES, train_worker

TRIAL_NUMBER = "trial_number"  # config key of a sampled trial: its Optuna trial number (`OptunaSpace`)
SPEC = "spec"  # config key of a fixed trial: its whole `TrialSpec`


class OptunaSpace:
    """The space as Optuna's define-by-run function: it suggests every parameter from its
    distribution, in order (as Optuna's fixed-distribution `ask` would), and hands the Optuna trial
    number to the Tune config, so the Tune trial, its Ray Train run and its MLflow child run share
    one deterministic name (`trial_0003`). No computation happens here."""

    def __init__(self, distributions: dict[str, Any]) -> None:
        self.distributions = distributions

    def __call__(self, trial) -> dict[str, int]:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        for name, d in self.distributions.items():
            if isinstance(d, FloatDistribution):
                trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)
            elif isinstance(d, IntDistribution):
                trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
            elif isinstance(d, CategoricalDistribution):
                trial.suggest_categorical(name, d.choices)
            else:  # pragma: no cover - raypriv.sweep.space.to_optuna makes nothing else
                raise TypeError(f"unknown distribution {d!r} for {name}")
        return {TRIAL_NUMBER: trial.number}


class FailingOptunaSearch(OptunaSearch):
    """`OptunaSearch` that tells Optuna FAIL for a trial that ended without finite objectives (it
    diverged): told as COMPLETE with NaN values, Optuna refuses the values and leaves it RUNNING."""

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if result is not None and not all(math.isfinite(result.get(m, math.nan)) for m in OBJECTIVES):
            result, error = None, True
        super().on_trial_complete(trial_id, result, error)


def tune_trial_name(trial) -> str:
    """Tune's `trial_name_creator` and `trial_dirname_creator`."""
    if SPEC in trial.config:
        return trial.config[SPEC]["name"]
    return trial_name(int(trial.config[TRIAL_NUMBER]))


def trial_spec(config: dict[str, Any], plan: SweepPlan) -> TrialSpec:
    """The trial a Tune config stands for: fixed in the config, or sampled over the plan's run config
    (a screening trial, tagged `raypriv.stage` = screen)."""
    if SPEC in config:
        return TrialSpec.model_validate(config[SPEC])
    number = int(config[TRIAL_NUMBER])
    params = {name: config[name] for name in plan.space}
    run = apply_params(plan.run, plan.space, params, source=f"{plan.sweep_id} {trial_name(number)}")
    return TrialSpec(name=trial_name(number), number=number, params=params, run=run, tags={TAG_STAGE: "screen"})


def run_trial(config: dict[str, Any], plan: SweepPlan) -> None:
    """The Tune function of one trial: train it on its Ray Train workers, then report the final result
    with the trial's wall time and the Ray + MLflow overhead around training."""
    started = time.perf_counter()
    spec = trial_spec(config, plan)
    s = plan.settings
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={"plan": plan, "trial": spec},
        torch_config=ProcessGroupConfig(),
        scaling_config=ray.train.ScalingConfig(num_workers=s.workers, use_gpu=plan.use_gpu,
                                               resources_per_worker={"CPU": s.cpus_per_worker}),
        run_config=ray.train.RunConfig(
            name=spec.name, storage_path=plan.train_storage,
            failure_config=ray.train.FailureConfig(max_failures=s.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            callbacks=[TuneReportCallback()],
            logging_config=ray.train.LoggingConfig(log_level="WARNING"),  # not one line per report
        ),
    )
    final = trainer.fit().metrics
    if not final:
        raise RuntimeError(f"{spec.name}: its Ray Train run ended without a final report")
    seconds = time.perf_counter() - started
    tune.report({**final, "trial_seconds": seconds, "overhead_seconds": seconds - final["trainer_seconds"]})
