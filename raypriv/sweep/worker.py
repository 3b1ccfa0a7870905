"""One trial, Ray Train side: the worker that runs `raypriv.method.run.run_training` on its rank of the
trial's process group and, on rank 0 only, records the trial in its MLflow child run (`TrialRun`).
A baseline trial (`TrialSpec.baseline`, a sweep's confirmation stage) evaluates that hand-made
baseline instead (`raypriv.method.baselines.run_baselines`, one method) on rank 0.

Checkpoints: the loop hands its state to `on_checkpoint` after pre-training and every
`adversarial.checkpoint_every` iterations; rank 0 reports it as a Ray Train checkpoint
(`loop_state.pt`), the other ranks report with it (every rank must, Ray Train's report is a
barrier). The finished run is reported once more with its files (`metrics.json` ...). A worker
restarted by `FailureConfig`, or a trial resumed by `raypriv sweep --resume`, finds the latest
one in `ray.train.get_checkpoint()`: a finished run is re-reported as it is, a loop state is
continued from (the child run is tagged `raypriv.resumed_from` with its iteration).

Kept apart from `raypriv.sweep.trial` so a worker process imports Ray Train and the trainer but
not Tune or Optuna (worker start-up is part of every trial's overhead).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import ray.train
import torch
import yaml

from raypriv.sweep.distributed import join_process_group
from raypriv.sweep.plan import SweepPlan, TrialSpec

OBJECTIVES = {"target_acc": "max", "privacy_acc": "min"}  # A_T up, A_B^N down: what Tune and Optuna see
ARTIFACTS = ("degrader.pt2", "samples.png", "metrics.json", "config.yaml")  # logged on the child run
LOOP_STATE = "loop_state.pt"
_log = logging.getLogger("raypriv.sweep")


def train_worker(config: dict[str, Any]) -> None:
    """A Ray Train worker: its rank of the trial's training and two-fold evaluation; rank 0 logs to MLflow."""
    plan: SweepPlan = config["plan"]
    trial: TrialSpec = config["trial"]
    with join_process_group() as world:
        rank0 = ray.train.get_context().get_world_rank() == 0
        record = _start_record(plan, trial, world) if rank0 else None
        try:
            _train(plan, trial, record)
        except BaseException as err:
            if record:
                record.finish("FAILED", reason=f"{type(err).__name__}: {err}")
            raise
        if record:
            record.finish()


def _start_record(plan: SweepPlan, trial: TrialSpec, world: int):
    from raypriv.sweep.plan import spec_digest
    from raypriv.sweep.tracking import TAG_DIGEST, TAG_WORKERS, TrialRun

    return TrialRun.start(plan.tracking_uri, plan.experiment_id, plan.parent_run_id, sweep=plan.sweep_id,
                          trial=trial.name, number=trial.number, params=trial.params,
                          tags={**plan.tags, **trial.tags, TAG_WORKERS: str(world), TAG_DIGEST: spec_digest(trial)})


def _train(plan: SweepPlan, trial: TrialSpec, record) -> None:
    from raypriv.method.run import run_training

    checkpoint = ray.train.get_checkpoint()
    resume = None
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            if (Path(folder) / "metrics.json").exists():  # the trial ended before: its run holds everything
                # Ray Train's Result.metrics are those of the last report *with* a checkpoint: re-report it.
                metrics = json.loads((Path(folder) / "metrics.json").read_text())
                ray.train.report(_final_report(metrics, trial), checkpoint=ray.train.Checkpoint.from_directory(folder))
                if record and "diverged" in metrics:
                    record.finish("FAILED", reason=metrics["diverged"])
                return
            resume = torch.load(Path(folder) / LOOP_STATE, weights_only=True)
        if record:
            record.resumed_from(int(resume["iteration"]))
    if trial.baseline is not None:
        _evaluate_baseline(plan, trial, record)
        return

    # About ten progress reports per trial reach Tune's table (each costs a round trip and a log
    # line); MLflow gets every iteration.
    every = max(1, trial.run.adversarial.iterations // 10)

    def on_iteration(row: dict[str, float]) -> None:
        if record:
            record.log_iteration(row)
        if int(row["iteration"]) % every == 0:
            ray.train.report({**{k: v for k, v in row.items() if isinstance(v, (int, float))},
                              **{k: math.nan for k in OBJECTIVES}})

    out = Path(tempfile.mkdtemp(prefix=f"raypriv-{trial.name}-"))
    started = time.perf_counter()
    try:
        try:
            result = run_training(trial.run, out, synthetic=plan.synthetic, root=plan.root,
                                  log=lambda message: _log.info("[%s] %s", trial.name, message),
                                  on_iteration=on_iteration, resume=resume, on_checkpoint=_report_state)
        except FloatingPointError as err:
            _diverged(err, trial, record, out, time.perf_counter() - started)
            return
        metrics = result.as_dict()
        final = _final_report(metrics, trial)
        if record:
            record.log_result(metrics, [out / name for name in ARTIFACTS], full_budget=bool(final["full_budget"]))
        _report(final, out)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _evaluate_baseline(plan: SweepPlan, trial: TrialSpec, record) -> None:
    """Rank 0 evaluates the baseline with the run config's two-fold evaluation (the attackers a
    degrader trained with this config would face, as `raypriv baselines` does); other ranks only
    report alongside it (Tune keeps rank 0's result). The trial's spec sets `seed` and `data.seed`
    to one value: the models and the synthetic clips change with it."""
    from raypriv.method.baselines import run_baselines
    from raypriv.method.models import budget_model_names, families_of
    from raypriv.method.run import evaluation_workers, run_attackers

    cfg = trial.run
    out = Path(tempfile.mkdtemp(prefix=f"raypriv-{trial.name}-"))
    try:
        if ray.train.get_context().get_world_rank() != 0:
            _report({"iteration": 0, **{k: math.nan for k in OBJECTIVES}}, out)
            return
        started = time.perf_counter()
        families = families_of(budget_model_names(cfg.budget))
        (row,) = run_baselines(
            cfg.data.preset, seed=cfg.seed, data_seed=cfg.data.seed, methods=[trial.baseline], attackers=run_attackers(cfg, families),
            video_attacker=cfg.evaluation.video_attacker, fresh_target=cfg.models.target, budget_families=families,
            epochs=cfg.evaluation.epochs, patience=cfg.evaluation.patience, min_epochs=cfg.evaluation.min_epochs,
            train_frames=cfg.evaluation.train_frames,
            workers=evaluation_workers(cfg), out_dir=out)
        metrics = {**row.result.as_dict(), "baseline": trial.baseline, "attackers": list(row.result.privacy_per_attacker),
                   "seconds": {"evaluation": row.result.seconds, "total": time.perf_counter() - started}}
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        if record:
            record.log_result(metrics, [out / name for name in ("metrics.json", "config.yaml", "baselines.csv")],
                              full_budget=True)
        _report(_final_report(metrics, trial), out)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _report(metrics: dict[str, Any], folder: Path) -> None:
    """`ray.train.report` on every rank, with the checkpoint `folder` from rank 0 only."""
    if ray.train.get_context().get_world_rank() == 0:
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(folder)))
    else:
        ray.train.report(metrics)


def _report_state(state: dict) -> None:
    """A loop checkpoint: rank 0's state (the ranks hold the same weights) as `loop_state.pt`."""
    with tempfile.TemporaryDirectory(prefix="raypriv-state-") as folder:
        if ray.train.get_context().get_world_rank() == 0:
            torch.save(state, Path(folder) / LOOP_STATE)
        _report({"iteration": state["iteration"], **{k: math.nan for k in OBJECTIVES}}, Path(folder))


def _diverged(err: FloatingPointError, trial: TrialSpec, record, out: Path, seconds: float) -> None:
    """The configuration diverged (a NaN/inf loss, named with its phase and step): the same config
    would diverge again, so the trial ends here, FAILED with the reason, and is not retried; Optuna
    is told FAIL (`FailingOptunaSearch`) and the Pareto report skips it."""
    _log.warning("[%s] diverged: %s", trial.name, err)
    metrics = {"diverged": f"diverged: {err}", "seconds": {"total": seconds}}
    if record:
        record.finish("FAILED", reason=metrics["diverged"])
    (out / "metrics.json").write_text(json.dumps(metrics))
    _report(_final_report(metrics, trial), out)


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
        "full_budget": float(trial.baseline is not None or iterations == trial.run.adversarial.iterations),
        "diverged": 0.0,
        "trainer_seconds": metrics["seconds"]["total"],
    }
