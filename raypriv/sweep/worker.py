"""One trial of a sweep, Ray Train side: the worker that runs `raypriv.method.run.run_training` and, on
rank 0 only, records the trial in its MLflow child run (`raypriv.sweep.tracking.TrialRun`).

Kept apart from `raypriv.sweep.trial` so a worker process imports Ray Train and the trainer but
not Tune or Optuna (worker start-up is part of every trial's overhead).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import ray.train

from raypriv.sweep.plan import SweepPlan, TrialSpec

OBJECTIVES = {"target_acc": "max", "privacy_acc": "min"}  # A_T up, A_B^N down: what Tune and Optuna see
ARTIFACTS = ("degrader.pt2", "samples.png", "metrics.json", "config.yaml")  # logged on the child run
_log = logging.getLogger("raypriv.sweep")


def train_worker(config: dict[str, Any]) -> None:
    """A Ray Train worker: run the trial's training and two-fold evaluation; rank 0 logs to MLflow."""
    from raypriv.sweep.tracking import TrialRun
    from raypriv.method.run import run_training

    plan: SweepPlan = config["plan"]
    trial: TrialSpec = config["trial"]
    rank0 = ray.train.get_context().get_world_rank() == 0
    record = TrialRun.start(plan.tracking_uri, plan.experiment_id, plan.parent_run_id, sweep=plan.sweep_id,
                            trial=trial.name, number=trial.number, params=trial.params, tags=plan.tags) if rank0 else None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:  # the trial ended before: its run already holds everything
        # Ray Train's Result.metrics are those of the last report *with* a checkpoint: re-report it.
        with checkpoint.as_directory() as folder:
            metrics = json.loads((Path(folder) / "metrics.json").read_text())
            if record:
                record.finish(*(("FAILED", metrics["diverged"]) if "diverged" in metrics else ()))
            ray.train.report(_final_report(metrics, trial), checkpoint=ray.train.Checkpoint.from_directory(folder))
        return

    out = Path(tempfile.mkdtemp(prefix=f"raypriv-{trial.name}-"))

    # About ten progress reports per trial reach Tune's table (each costs a round trip and a log
    # line); MLflow gets every iteration.
    every = max(1, trial.run.adversarial.iterations // 10)

    def on_iteration(row: dict[str, float]) -> None:
        if record:
            record.log_iteration(row)
        _inject_fault(plan, trial, int(row["iteration"]))
        if int(row["iteration"]) % every == 0:
            ray.train.report({**{k: v for k, v in row.items() if isinstance(v, (int, float))},
                              **{k: math.nan for k in OBJECTIVES}})

    started = time.perf_counter()
    try:
        try:
            metrics = run_training(trial.run, out, synthetic=plan.synthetic, root=plan.root,
                                   log=lambda message: _log.info("[%s] %s", trial.name, message),
                                   on_iteration=on_iteration).as_dict()
        except FloatingPointError as err:
            # The configuration diverged (a NaN/inf loss, named with its phase and step): the same
            # config would diverge again, so the trial ends here, FAILED with the reason, and is not
            # retried; Optuna is told FAIL (NumberedOptunaSearch) and the Pareto report skips it.
            _log.warning("[%s] diverged: %s", trial.name, err)
            metrics = {"diverged": f"diverged: {err}", "seconds": {"total": time.perf_counter() - started}}
            if record:
                record.finish("FAILED", reason=metrics["diverged"])
                record = None
            (out / "metrics.json").write_text(json.dumps(metrics))
            ray.train.report(_final_report(metrics, trial), checkpoint=ray.train.Checkpoint.from_directory(str(out)))
            return
        result = _final_report(metrics, trial)
        if record:
            record.log_result(metrics, [out / name for name in ARTIFACTS], full_budget=bool(result["full_budget"]))
        ray.train.report(result, checkpoint=ray.train.Checkpoint.from_directory(str(out)))
    except BaseException as err:
        if record:
            record.finish("FAILED", reason=f"{type(err).__name__}: {err}")
        raise
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if record:
        record.finish()


def _final_report(metrics: dict[str, Any], trial: TrialSpec) -> dict[str, Any]:
    if "diverged" in metrics:  # no objectives: Optuna FAIL, left out of the front
        return {"iteration": 0, **{k: math.nan for k in OBJECTIVES}, "target_acc_fresh": math.nan, "full_budget": 0.0,
                "diverged": 1.0, "trainer_seconds": metrics["seconds"]["total"]}
    iterations = len(metrics.get("history", []))
    return {
        "iteration": iterations,
        "target_acc": metrics["target_acc"],
        "target_acc_fresh": metrics["target_acc_fresh"],
        "privacy_acc": metrics["privacy_acc"],
        "full_budget": float(iterations == trial.run.adversarial.iterations),
        "diverged": 0.0,
        "trainer_seconds": metrics["seconds"]["total"],
    }


FAULT_ENV = "RAYPRIV_INJECT_FAULT"


def _inject_fault(plan: SweepPlan, trial: TrialSpec, iteration: int) -> None:
    """Fault injection for the reliability tests (tests/test_reliability_sweep.py), as Ray tests itself:
    `RAYPRIV_INJECT_FAULT=trial_0000@2` makes that trial's worker raise after iteration 2, once per
    sweep (a marker in the trial's Ray Train folder), so Ray Train's FailureConfig retries it."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    name, _, at = spec.partition("@")
    if name != trial.name or iteration != int(at or 0) or "://" in plan.train_storage:
        return
    marker = Path(plan.train_storage) / f"{trial.name}.fault-injected"
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    raise RuntimeError(f"injected fault ({FAULT_ENV}={spec}) in {trial.name} after iteration {iteration}")
