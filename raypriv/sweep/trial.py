"""One trial of a sweep, Tune side: the function that launches a `TorchTrainer` (whose worker is
`raypriv.sweep.worker.train_worker`), and the Optuna searcher that numbers trials.

Ray Train V2 is the default in Ray 2.60: a Tune trial is a function that builds a `TorchTrainer`
and calls `fit()`, and `TuneReportCallback` forwards the worker's reports to Tune. Each report
carries A_T (`target_acc`) and A_B^N (`privacy_acc`) because Tune checks the searcher's metrics on
every result; per-iteration reports set them to NaN, so a trial that fails before its two-fold
evaluation is told to Optuna as FAIL, never COMPLETE with partial values.

Resumption: the Train run of a trial has a deterministic name (the trial's) under the sweep's
storage folder, and the worker checkpoints the finished run's files. A retried worker (Ray
Train's FailureConfig) or a trial resumed by `raypriv sweep --resume` that finds the checkpoint
re-reports its results instead of training again; one that does not retrains from the start
(the adversarial loop keeps no mid-training state). Either way it reuses its MLflow child run.

This module imports Ray Tune and Optuna: only the sweep driver and Ray's own processes import it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import ray.train
from ray import tune
from ray.train.torch import TorchConfig, TorchTrainer
from ray.train.torch.config import _set_torch_distributed_env_vars, _TorchBackend  # Ray 2.60; checked by the e2e tests
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.search.optuna import OptunaSearch

from raypriv.sweep.config import apply_params
from raypriv.sweep.plan import SweepPlan, TrialSpec, trial_name
from raypriv.sweep.worker import OBJECTIVES, train_worker

class _OneWorkerTorchBackend(_TorchBackend):
    """Ray Train's torch backend without a process group when a trial has one worker (the only case
    the schema allows until the loop is data-parallel). The gloo group's TCPStore listens on every
    interface (`::`, measured with tests/test_reliability_sweep.py), which a laptop sweep must not
    open; with one worker the group would serve nothing anyway."""

    def on_start(self, worker_group, backend_config):
        if len(worker_group) > 1:
            return super().on_start(worker_group, backend_config)
        worker_group.execute(_set_torch_distributed_env_vars)  # RANK, LOCAL_RANK ... as usual


@dataclass
class OneWorkerTorchConfig(TorchConfig):
    @property
    def backend_cls(self):
        return _OneWorkerTorchBackend


TRIAL_NUMBER = "trial_number"  # config key: the Optuna trial number, added by `NumberedOptunaSearch`


class NumberedOptunaSearch(OptunaSearch):
    """`OptunaSearch` that adds the Optuna trial number to each trial's config, so the Tune trial,
    its Ray Train run and its MLflow child run share one deterministic name (`trial_0003`)."""

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        config = super().suggest(trial_id)
        if config is not None:
            # OptunaSearch keeps Tune trial id -> Optuna trial in `_ot_trials` (Ray 2.60); the
            # end-to-end sweep test checks the names, so a change there fails loudly.
            config[TRIAL_NUMBER] = self._ot_trials[trial_id].number
        return config

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        # A trial that ended without finite objectives (it diverged) is an Optuna FAIL: told as
        # COMPLETE with NaN values, Optuna refuses the values and leaves the trial RUNNING.
        if result is not None and not all(math.isfinite(result.get(m, math.nan)) for m in OBJECTIVES):
            result, error = None, True
        super().on_trial_complete(trial_id, result, error)


def tune_trial_name(trial) -> str:
    """Tune's `trial_name_creator` and `trial_dirname_creator`."""
    return trial_name(int(trial.config[TRIAL_NUMBER]))


def run_trial(config: dict[str, Any], plan: SweepPlan) -> None:
    """The Tune function of one trial: build its run config, train it on Ray Train workers, and report
    the final result with the trial's wall time and the Ray + MLflow overhead around training."""
    started = time.perf_counter()
    number = int(config[TRIAL_NUMBER])
    params = {name: config[name] for name in plan.config.space}
    name = trial_name(number)
    s = plan.config.sweep
    run = apply_params(plan.config.run, plan.config.space, params, source=f"{plan.sweep_id} {name}")
    spec = TrialSpec(name=name, number=number, params=params, run=run)
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={"plan": plan, "trial": spec},
        torch_config=OneWorkerTorchConfig(),
        scaling_config=ray.train.ScalingConfig(num_workers=s.workers, use_gpu=plan.use_gpu,
                                               resources_per_worker={"CPU": s.cpus_per_worker}),
        run_config=ray.train.RunConfig(
            name=name, storage_path=plan.train_storage,
            failure_config=ray.train.FailureConfig(max_failures=s.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
            callbacks=[TuneReportCallback()],
            logging_config=ray.train.LoggingConfig(log_level="WARNING"),  # not one line per report
        ),
    )
    final = trainer.fit().metrics
    if not final:
        raise RuntimeError(f"{name}: its Ray Train run ended without a final report")
    seconds = time.perf_counter() - started
    tune.report({**final, "trial_seconds": seconds, "overhead_seconds": seconds - final["trainer_seconds"]})
