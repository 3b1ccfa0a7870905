"""One trial of a sweep, Ray Train side: the worker that runs `raypriv.train.run_training` and, on
rank 0 only, records the trial in its MLflow child run (`raypriv.tracking.store.TrialRun`).

Kept apart from `raypriv.search.trial` so a worker process imports Ray Train and the trainer but
not Tune or Optuna (worker start-up is part of every trial's overhead).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import ray.train

from raypriv.search.plan import SweepPlan, TrialSpec

OBJECTIVES = {"target_acc": "max", "privacy_acc": "min"}  # A_T up, A_B^N down: what Tune and Optuna see
ARTIFACTS = ("degrader.pt2", "samples.png", "metrics.json", "config.yaml")  # logged on the child run
_log = logging.getLogger("raypriv.sweep")


def train_worker(config: dict[str, Any]) -> None:
    """A Ray Train worker: run the trial's training and two-fold evaluation; rank 0 logs to MLflow."""
    from raypriv.tracking.store import TrialRun
    from raypriv.train import run_training

    plan: SweepPlan = config["plan"]
    trial: TrialSpec = config["trial"]
    rank0 = ray.train.get_context().get_world_rank() == 0
    record = TrialRun.start(plan.tracking_uri, plan.experiment_id, plan.parent_run_id, sweep=plan.sweep_id,
                            trial=trial.name, number=trial.number, params=trial.params, tags=plan.tags) if rank0 else None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:  # the trial finished before: its run already holds everything
        with checkpoint.as_directory() as folder:
            metrics = json.loads((Path(folder) / "metrics.json").read_text())
        if record:
            record.finish()
        ray.train.report(_final_report(metrics, trial))
        return

    out = Path(tempfile.mkdtemp(prefix=f"raypriv-{trial.name}-"))

    # About ten progress reports per trial reach Tune's table (each costs a round trip and a log
    # line); MLflow gets every iteration.
    every = max(1, trial.run.adversarial.iterations // 10)

    def on_iteration(row: dict[str, float]) -> None:
        if record:
            record.log_iteration(row)
        if int(row["iteration"]) % every == 0:
            ray.train.report({**{k: v for k, v in row.items() if isinstance(v, (int, float))},
                              **{k: math.nan for k in OBJECTIVES}})

    try:
        metrics = run_training(trial.run, out, synthetic=plan.synthetic, root=plan.root,
                               log=lambda message: _log.info("[%s] %s", trial.name, message),
                               on_iteration=on_iteration)
        result = _final_report(metrics, trial)
        if record:
            record.log_result(metrics, [out / name for name in ARTIFACTS], full_budget=bool(result["full_budget"]))
        ray.train.report(result, checkpoint=ray.train.Checkpoint.from_directory(str(out)))
    except BaseException:
        if record:
            record.finish("FAILED")
        raise
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if record:
        record.finish()


def _final_report(metrics: dict[str, Any], trial: TrialSpec) -> dict[str, Any]:
    iterations = len(metrics.get("history", []))
    return {
        "iteration": iterations,
        "target_acc": metrics["target_acc"],
        "target_acc_fresh": metrics["target_acc_fresh"],
        "privacy_acc": metrics["privacy_acc"],
        "full_budget": float(iterations == trial.run.adversarial.iterations),
        "trainer_seconds": metrics["seconds"]["total"],
    }
