"""The one typed run configuration: frozen pydantic models, unknown keys are errors.

A run config comes from a search-space YAML (`search_spaces/<experiment>.yaml`): its `base`
mapping, then one named profile (`smoke`, `quick`, `full`) merged over it, then `--set key=value`
overrides (dotted keys, YAML values). Every model name is checked against the registries.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from raypriv.adversarial.losses import PRIVACY_LOSSES


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Frozen):
    dataset: Literal["sbu"] = "sbu"
    preset: Literal["tiny", "laptop", "paper"] = "laptop"
    seed: int = 0  # nuisance draws of the synthetic clips / split assignment of real data


class ModelsConfig(_Frozen):
    degrader: str = "degrader_small"  # f_d, from the degrader registry
    target: str = "c3d_lite"  # f_T, from the target registry

    @model_validator(mode="after")
    def _known(self) -> "ModelsConfig":
        from raypriv.models import DEGRADERS, TARGETS

        DEGRADERS.spec(self.degrader)
        TARGETS.spec(self.target)
        return self


class BudgetConfig(_Frozen):
    """The ensemble of M budget models f_b and how its architectures are drawn."""

    count: int = Field(4, ge=1, le=32)  # M
    # "cycle": the names in `models`, repeated to M (one architecture at several widths is
    # e.g. [mobilenet_v2_035, mobilenet_v2_050, mobilenet_v2_100], as in the paper).
    # "sample": M architectures drawn with `seed` from the registry entries of `families`.
    policy: Literal["cycle", "sample"] = "sample"
    models: tuple[str, ...] = ()
    families: tuple[str, ...] = ("smallcnn",)
    seed: int = 0

    @model_validator(mode="after")
    def _known(self) -> "BudgetConfig":
        from raypriv.models import BUDGETS

        if self.policy == "cycle" and not self.models:
            raise ValueError("budget.models must name at least one budget model when budget.policy is 'cycle'")
        for name in self.models:
            BUDGETS.spec(name)
        unknown = sorted(set(self.families) - set(BUDGETS.families()))
        if unknown:
            raise ValueError(f"unknown budget families {unknown}; registered families: {', '.join(BUDGETS.families())}")
        return self


class AdversarialConfig(_Frozen):
    """Algorithm 1: f_d's loss `L_T + gamma * max_i L_B(f_b^i) + alpha * |f_d(X) - X|_1` and its loops."""

    gamma: float = Field(2.0, ge=0)  # γ, weight of the privacy term
    alpha: float = Field(0.0, ge=0)  # weight of the L1 distortion term (the paper uses it on SBU)
    privacy_loss: Literal[PRIVACY_LOSSES] = "neg_entropy"  # type: ignore[valid-type]
    iterations: int = Field(100, ge=0)
    restart_every: int = Field(0, ge=0)  # R; 0 = never restart the budget models
    batch_size: int = Field(16, ge=2)
    target_threshold: float = Field(0.9, ge=0, le=1)  # threshold1: f_T validation accuracy
    budget_threshold: float = Field(0.95, ge=0, le=1)  # threshold2: budget training accuracy
    target_max_steps: int = Field(10, ge=0)  # caps of the inner loops (the original's were unbounded)
    budget_max_steps: int = Field(10, ge=0)
    restart_max_steps: int = Field(200, ge=0)  # cap on re-training restarted budget models
    lr_degrader: float = Field(1e-3, gt=0)
    lr_target: float = Field(1e-3, gt=0)
    lr_budget: float = Field(1e-3, gt=0)


class PretrainConfig(_Frozen):
    degrader_steps: int = Field(100, ge=0)  # reconstruction of X before anything else
    target_epochs: int = Field(10, ge=0)  # f_T (jointly with f_d) on the action
    budget_epochs: int = Field(10, ge=0)  # each f_b on frozen f_d(X), to confidence
    patience: int = Field(4, ge=1)


class EvaluationConfig(_Frozen):
    attackers: tuple[str, ...] | None = None  # None: chosen from families unused by the budget models
    num_attackers: int = Field(6, ge=1)
    video_attacker: str | None = "c3d_lite"
    epochs: int = Field(25, ge=1)
    patience: int = Field(6, ge=1)


class RunConfig(_Frozen):
    seed: int = 0  # model initialisation and batch order
    data: DataConfig = DataConfig()
    models: ModelsConfig = ModelsConfig()
    budget: BudgetConfig = BudgetConfig()
    adversarial: AdversarialConfig = AdversarialConfig()
    pretrain: PretrainConfig = PretrainConfig()
    evaluation: EvaluationConfig = EvaluationConfig()


# Short names for the knobs a user turns most; `--set gamma=2` means `--set adversarial.gamma=2`.
ALIASES = {
    "gamma": "adversarial.gamma",
    "alpha": "adversarial.alpha",
    "iterations": "adversarial.iterations",
    "restart_every": "adversarial.restart_every",
    "privacy_loss": "adversarial.privacy_loss",
    "M": "budget.count",
}


class ConfigError(ValueError):
    """A config file or override is wrong; the message names the file, the key and what is allowed."""


def load_run_config(path: str | Path, profile: str | None = None, overrides: tuple[str, ...] = ()) -> RunConfig:
    """Resolve `base` + `profiles[profile]` + `overrides` ("a.b=value") from a search-space YAML."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(doc, dict) or "base" not in doc:
        raise ConfigError(f"{path}: expected a mapping with a 'base' key (and optional 'profiles')")
    raw = copy.deepcopy(doc["base"]) or {}
    profiles = doc.get("profiles") or {}
    if profile is not None:
        if profile not in profiles:
            raise ConfigError(f"{path}: unknown profile {profile!r}; profiles: {', '.join(profiles) or 'none'}")
        raw = _merge(raw, profiles[profile] or {})
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key=value, e.g. adversarial.gamma=2.0")
        key = ALIASES.get(key.strip(), key.strip())
        raw = _merge(raw, _nest(key.split("."), yaml.safe_load(value)))
    return parse_run_config(raw, source=f"{path}" + (f" (profile {profile})" if profile else ""))


def parse_run_config(raw: dict[str, Any], source: str = "config") -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"]) or "(top level)"
            problems.append(f"{key}: {e['msg']}")
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None


def _nest(keys: list[str], value: Any) -> dict[str, Any]:
    return {keys[0]: value} if len(keys) == 1 else {keys[0]: _nest(keys[1:], value)}


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
