"""What every trial needs to know, and the deterministic ids of sweeps, comparisons and trials.

The plan crosses the Ray boundary as a typed, frozen object (never an untyped dict): the Tune
function gets the `SweepPlan`, each Train worker the plan and its `TrialSpec`. A trial's run
config is either sampled by Optuna over `SweepPlan.run` (a sweep's screening trials) or fixed in
advance (a comparison's arm x seed runs, a sweep's confirmation stage), in which case its `TrialSpec`
travels in the Tune config.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from raypriv.method.config import RunConfig, fingerprint
from raypriv.sweep.config import CompareConfig, SpaceParam, SweepConfig, SweepSettings


class SweepPlan(BaseModel):
    """One sweep or comparison, resolved: how its trials run, where data comes from, where records go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sweep_id: str
    name: str  # the experiment (search space) name
    settings: SweepSettings
    run: RunConfig | None = None  # what sampled trials start from (None: every trial is fixed)
    space: dict[str, SpaceParam] = {}
    synthetic: bool
    root: str | None  # real data folder or s3:// prefix (None with synthetic data)
    tracking_uri: str  # MLflow
    experiment_id: str
    parent_run_id: str
    tags: dict[str, str]  # set on every child run: git commit, raypriv version
    train_storage: str  # absolute; Ray Train keeps one run (checkpoints) per trial under it
    use_gpu: bool


class TrialSpec(BaseModel):
    """One trial: its deterministic name and number, the parameters it logs, its run config, its tags,
    and what it does: train and evaluate f_d (`run_training`), or, with `baseline`, evaluate that
    hand-made baseline (`raypriv.method.baselines`) with the run config's evaluation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    number: int
    params: dict[str, Any]
    run: RunConfig
    tags: dict[str, str] = {}
    baseline: str | None = None  # a method of raypriv.method.baselines.METHODS, e.g. "downsample_s4"


def trial_name(number: int) -> str:
    """Tune trial, Ray Train run and MLflow child run all carry this name: no timestamp, no random id."""
    return f"trial_{number:04d}"


def identity(config: SweepConfig) -> dict[str, Any]:
    """What the sweep id digests besides the data: the resolved run config and the space (JSON)."""
    return {"run": fingerprint(config.run),
            "space": {name: param.model_dump(mode="json") for name, param in config.space.items()}}


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:8]


def config_digest(run: RunConfig) -> str:
    """12 hex characters of sha256 over the resolved run config: the key results/ rows carry."""
    return hashlib.sha256(json.dumps(fingerprint(run), sort_keys=True).encode()).hexdigest()[:12]


def spec_digest(spec: TrialSpec) -> str:
    """What a trial computes, as 12 hex digits: the run config's digest, or for a baseline the run
    config with the method (what a control or baseline result is cached by across sweeps)."""
    if spec.baseline is None:
        return config_digest(spec.run)
    payload = {"run": fingerprint(spec.run), "baseline": spec.baseline}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def sweep_id(config: SweepConfig, *, synthetic: bool, root: str | None) -> str:
    """`<space>-<profile>-<sampler>-s<seed>-<digest>`: the same sweep always gets the same id.

    The digest covers what changes the results (the resolved run config, the space, the data);
    trials, concurrency and resources do not enter it, so `--resume` can pick a sweep up again.
    """
    digest = _digest({**identity(config), "data": "synthetic" if synthetic else root})
    return f"{config.name}-{config.profile or 'base'}-{config.sweep.sampler}-s{config.sweep.seed}-{digest}"


def compare_id(config: CompareConfig, *, synthetic: bool, root: str | None) -> str:
    """`<space>-<profile>-compare-<digest>`: the digest covers every arm x seed run config and the data."""
    runs = [[r.arm, r.seed, fingerprint(r.run)] for r in config.runs]
    digest = _digest({"runs": runs, "data": "synthetic" if synthetic else root})
    return f"{config.name}-{config.profile or 'base'}-compare-{digest}"
