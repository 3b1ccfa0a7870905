"""What every trial of a sweep needs to know, the sweep's deterministic id, and the resource-fit check.

The plan crosses the Ray boundary as a typed, frozen object (never an untyped dict): the Tune
function gets the `SweepPlan`, each Train worker the plan and its `TrialSpec`.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict

from raypriv.method.config import RunConfig
from raypriv.sweep.config import SweepConfig


class SweepPlan(BaseModel):
    """One sweep, resolved: its config, where data comes from, where its records go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sweep_id: str
    config: SweepConfig
    synthetic: bool
    root: str | None  # real data folder or s3:// prefix (None with synthetic data)
    tracking_uri: str  # MLflow
    experiment_id: str
    parent_run_id: str
    tags: dict[str, str]  # set on every child run: git commit, raypriv version
    train_storage: str  # absolute; Ray Train keeps one run (checkpoints) per trial under it
    use_gpu: bool


class TrialSpec(BaseModel):
    """One trial: its deterministic name and number (the Optuna trial number), sampled params, run config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    number: int
    params: dict[str, Any]
    run: RunConfig


def trial_name(number: int) -> str:
    """Tune trial, Ray Train run and MLflow child run all carry this name: no timestamp, no random id."""
    return f"trial_{number:04d}"


def identity(config: SweepConfig) -> dict[str, Any]:
    """What the sweep id digests besides the data: the resolved run config and the space (JSON)."""
    return {"run": config.run.model_dump(mode="json"),
            "space": {name: param.model_dump(mode="json") for name, param in config.space.items()}}


def sweep_id(config: SweepConfig, *, synthetic: bool, root: str | None) -> str:
    """`<space>-<profile>-<sampler>-s<seed>-<digest>`: the same sweep always gets the same id.

    The digest covers what changes the results (the resolved run config, the space, the data);
    trials, concurrency and resources do not enter it, so `--resume` can pick a sweep up again.
    """
    payload = json.dumps({**identity(config), "data": "synthetic" if synthetic else root}, sort_keys=True)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:8]
    return f"{config.name}-{config.profile or 'base'}-{config.sweep.sampler}-s{config.sweep.seed}-{digest}"


class ResourceError(RuntimeError):
    """The requested trials do not fit the cluster: they would wait for resources forever."""


def check_resources(config: SweepConfig, cluster: dict[str, float], *, use_gpu: bool) -> None:
    """Fail unless `concurrency` trials, each its Tune function plus its Train workers, fit `cluster`.

    Train workers sit in their own placement groups that Tune's `max_concurrent_trials` does not
    see: if the trial functions hold the CPUs the workers need, nothing ever starts.
    """
    s = config.sweep
    cpus = float(cluster.get("CPU", 0))
    gpus = float(cluster.get("GPU", 0))
    per_trial = s.trial_cpus + s.workers * s.cpus_per_worker
    where = f"(sweep settings from {config.source} and the command line)"
    if per_trial > cpus + 1e-9:
        raise ResourceError(
            f"one trial needs {s.trial_cpus:g} CPU for its Tune function + {s.workers} worker(s) x "
            f"{s.cpus_per_worker:g} CPU = {per_trial:g} CPUs, but the cluster has {cpus:g}; lower "
            f"sweep.cpus_per_worker or sweep.trial_cpus {where}, or add CPUs"
        )
    if s.concurrency * per_trial > cpus + 1e-9:
        fits = max(1, math.floor(cpus / per_trial + 1e-9))
        raise ResourceError(
            f"--concurrency {s.concurrency} x {per_trial:g} CPUs per trial = {s.concurrency * per_trial:g} CPUs, but "
            f"the cluster has {cpus:g}; trials beyond that would wait forever for their Train workers. "
            f"Use --concurrency {fits} (or lower sweep.cpus_per_worker {where})"
        )
    if use_gpu and s.concurrency * s.workers > gpus + 1e-9:
        raise ResourceError(
            f"--concurrency {s.concurrency} x {s.workers} worker(s) x 1 GPU = {s.concurrency * s.workers} GPUs, "
            f"but the cluster has {gpus:g}; lower --concurrency or set sweep.use_gpu: false {where}"
        )
