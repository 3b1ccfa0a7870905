"""The one typed run configuration: frozen pydantic models, unknown keys are errors.

The schema's defaults are the paper's SBU setting (Wu et al., section 4.1 and Algorithm 1). A run
config is resolved from a search-space YAML (`search_spaces/<experiment>.yaml`) in this order,
each layer merged over the one before (docs/configuration.md):

1. the schema defaults below;
2. one named profile of the YAML (`smoke`, `quick`, `full`);
3. for a sweep's screening trials only, that profile's `trial:` mapping (the search's fidelity);
4. `--set key=value` overrides (dotted keys or the short names in `ALIASES`, YAML values);
5. what a sweep samples from `space:` or what a comparison's arm sets (`arms:`), applied last so an
   arm or a sampled point always means the same thing whatever `--set` changed around it.

This module is the bottom of the method: it imports nothing from raypriv. Model names are plain
strings here; `raypriv.method.run.check_run_config` checks them against the model registries.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# Privacy losses L_B of f_d's objective; `raypriv.method.losses` implements one function per name.
# neg_entropy and uniform_ce suit a multi-class privacy task (SBU's actor pair), neg_binary_entropy
# a multi-label one (VISPR's attributes); `raypriv.method.run.check_run_config` refuses a mismatch.
PrivacyLoss = Literal["neg_entropy", "uniform_ce", "neg_binary_entropy", "prior_binary_kl"]
# Data sets that carry the target task's labels only, so the privacy labels must come from a second
# set (`data.privacy_dataset`): the paper's cross-dataset setting (section 4.2).
_TARGET_ONLY_DATASETS = ("ucf101",)


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(Frozen):
    """Where the two tasks' data come from: one set carrying both labels (SBU: action and actor
    pair), or a task set and a privacy set that share only f_d (UCF-101 + VISPR, section 4.2)."""

    dataset: Literal["sbu", "ucf101"] = "sbu"  # the target task's videos (Y_T); SBU's carry Y_B too
    privacy_dataset: Literal["vispr"] | None = None  # a second set with the privacy labels Y_B (images)
    preset: Literal["tiny", "small", "laptop", "paper"] = "laptop"
    seed: int = 0  # nuisance draws of the synthetic clips / split assignment of real data
    ucf101_fold: int = Field(1, ge=1, le=3)  # UCF-101's official train/test split (trainlist0K / testlist0K)
    # VISPR's attributes: the paper's 17 most frequent in UCF-101, the 7 of a smart home, or all 68
    vispr_subset: Literal["vispr17", "vispr7", "all"] = "vispr17"

    @model_validator(mode="after")
    def _privacy_labels_exist(self) -> "DataConfig":
        if self.dataset in _TARGET_ONLY_DATASETS and self.privacy_dataset is None:
            raise ValueError(f"dataset {self.dataset!r} has no privacy labels: set privacy_dataset (e.g. vispr)")
        return self


class ModelsConfig(Frozen):
    degrader: str = "degrader_small"  # f_d, from the degrader registry
    target: str = "c3d_lite"  # f_T, from the target registry


class BudgetConfig(Frozen):
    """The ensemble of M budget models f_b and how its architectures are drawn."""

    count: int = Field(4, ge=1, le=32)  # M
    # "cycle": the names in `models`, repeated to M (one architecture at several widths is
    # e.g. [mobilenet_v2_035, mobilenet_v2_050, mobilenet_v2_100], as in the paper).
    # "sample": M architectures drawn with `seed` from the registry entries of `families`.
    policy: Literal["cycle", "sample"] = "sample"
    models: tuple[str, ...] = ()
    families: tuple[str, ...] = ("smallcnn",)
    seed: int = 0


class AdversarialConfig(Frozen):
    """Algorithm 1: f_d's loss `L_T + gamma * max_i L_B(f_b^i) + alpha * |f_d(X) - X|_1` and its loops."""

    gamma: float = Field(2.0, ge=0)  # γ, weight of the privacy term (the paper's SBU value)
    alpha: float = Field(0.0, ge=0)  # weight of the L1 distortion term (the paper uses it on SBU)
    privacy_loss: PrivacyLoss = "neg_entropy"
    # The max over the ensemble: per clip (Algorithm 1) or one model per batch (raypriv.method.losses).
    ensemble_max: Literal["sample", "batch"] = "sample"
    iterations: int = Field(100, ge=0)
    restart_every: int = Field(100, ge=0)  # R; 0 = never restart the budget models (the paper: 100)
    batch_size: int = Field(16, ge=2)
    # Step a: f_d's steps on the whole objective per iteration, f_d alone (Algorithm 1) or with f_T.
    privacy_steps: int = Field(1, ge=1)
    privacy_trains_target: bool = False
    # threshold1 on f_T's validation accuracy, as a fraction of 1 ("absolute", the paper's 90 %) or
    # of f_T's own pre-trained validation accuracy ("pretrained": a level f_T can reach).
    target_threshold: float = Field(0.9, ge=0, le=1)
    target_threshold_of: Literal["absolute", "pretrained"] = "absolute"
    budget_threshold: float = Field(0.95, ge=0, le=1)  # threshold2: budget training accuracy
    target_max_steps: int = Field(10, ge=0)  # caps of the inner loops (the original's were unbounded)
    budget_max_steps: int = Field(10, ge=0)
    # Frames per clip the budget models see in the adversarial and budget phases (None: all):
    # they average over frames anyway, and fewer frames make every iteration cheaper.
    budget_frames: int | None = Field(None, ge=1)
    target_check_every: int = Field(1, ge=1)  # check f_T's validation accuracy every k iterations
    # The game's state is checkpointed after pre-training and every k iterations (None: a tenth of
    # the game), so a failed Ray Train worker or a resumed sweep continues from there.
    checkpoint_every: int | None = Field(None, ge=1)
    lr_degrader: float = Field(1e-3, gt=0)
    lr_target: float = Field(1e-3, gt=0)
    lr_budget: float = Field(1e-3, gt=0)


class PretrainConfig(Frozen):
    # Adam's learning rate of the reconstruction and of f_d + f_T's pre-training; the game's own
    # rates (adversarial.lr_*) apply from the first adversarial iteration.
    lr: float = Field(1e-3, gt=0)
    degrader_steps: int = Field(100, ge=0)  # reconstruction of X before anything else
    target_epochs: int = Field(10, ge=0)  # f_T (jointly with f_d) on the action
    budget_epochs: int = Field(10, ge=0)  # each f_b on frozen f_d(X), to confidence; restarts too
    patience: int = Field(4, ge=1)


class EvaluationConfig(Frozen):
    attackers: tuple[str, ...] | None = None  # None: chosen from families unused by the budget models
    num_attackers: int = Field(6, ge=1)
    video_attacker: str | None = "c3d_lite"
    epochs: int = Field(25, ge=1)
    patience: int = Field(6, ge=1)
    # Early stopping may end a fit only from this epoch on (Keras's `start_from_epoch`): a fresh model
    # on downsampled frames can sit at chance for several epochs before it learns (docs/design.md).
    min_epochs: int = Field(0, ge=0)
    # Frames per clip in each training batch of a frame-level attacker (None: all); tested on all.
    train_frames: int | None = Field(None, ge=1)
    # On the CPU, models fitted at once in separate one-thread processes. None: as many as the
    # torch threads this process has (the machine's cores for `raypriv train`; a Ray Train
    # worker's CPUs, which Ray sets as its thread count). Results do not depend on it.
    workers: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _min_epochs_within_epochs(self) -> "EvaluationConfig":
        if self.min_epochs > self.epochs:
            raise ValueError(f"min_epochs ({self.min_epochs}) exceeds epochs ({self.epochs})")
        return self


class RunConfig(Frozen):
    seed: int = 0  # model initialisation and batch order
    data: DataConfig = DataConfig()
    models: ModelsConfig = ModelsConfig()
    budget: BudgetConfig = BudgetConfig()
    adversarial: AdversarialConfig = AdversarialConfig()
    pretrain: PretrainConfig = PretrainConfig()
    evaluation: EvaluationConfig = EvaluationConfig()


# Options added after results were recorded, at the value that reproduces those results: left out of
# `fingerprint`, so the digests of configs that do not use them (sweep ids, comparison ids, the
# confirmation cache, results/ rows) stay what they were and recorded work still resumes.
NEUTRAL = {("evaluation", "min_epochs"): 0}


def fingerprint(run: RunConfig) -> dict[str, Any]:
    """`run` as JSON for digests: every field, less those of `NEUTRAL` at their neutral value."""
    out = run.model_dump(mode="json")
    for (section, key), neutral in NEUTRAL.items():
        if out[section].get(key) == neutral:
            del out[section][key]
    return out


# Short names for the knobs a user turns most; `--set gamma=2` means `--set adversarial.gamma=2`.
ALIASES = {
    "gamma": "adversarial.gamma",
    "alpha": "adversarial.alpha",
    "iterations": "adversarial.iterations",
    "restart_every": "adversarial.restart_every",
    "privacy_loss": "adversarial.privacy_loss",
    "M": "budget.count",
    "lr_degrader": "adversarial.lr_degrader",
    "lr_target": "adversarial.lr_target",
    "lr_budget": "adversarial.lr_budget",
}

# Top-level keys of a search-space YAML besides `profiles`: what `raypriv sweep` and `raypriv
# compare` read (raypriv.sweep.config). A profile may hold `space`, `sweep`, `trial` and `arms` too.
SWEEP_KEYS = ("space", "sweep", "arms")
PROFILE_SWEEP_KEYS = ("space", "sweep", "trial", "arms")


class ConfigError(ValueError):
    """A config file or override is wrong; the message names the file, the key and what is allowed."""


def load_run_config(path: str | Path, profile: str | None = None, overrides: tuple[str, ...] = (), *,
                    sweep_trial: bool = False) -> RunConfig:
    """Resolve the schema defaults + `profiles[profile]` (+ its `trial:` with `sweep_trial`) + `overrides`.

    `overrides` are "a.b=value" strings (values parsed as YAML). Model names are not checked here
    (`raypriv.method.run.check_run_config` does that).
    """
    return parse_run_config(run_mapping(path, profile, overrides, sweep_trial=sweep_trial), source_of(path, profile))


def run_mapping(path: str | Path, profile: str | None = None, overrides: tuple[str, ...] = (), *,
                sweep_trial: bool = False) -> dict[str, Any]:
    """The unvalidated run-config mapping of layers 2-4 (profile, its `trial:`, overrides)."""
    path = Path(path)
    doc = read_space_file(path)
    chosen = profile_of(doc, profile, path)
    raw = {k: copy.deepcopy(v) for k, v in chosen.items() if k not in PROFILE_SWEEP_KEYS}
    if sweep_trial:
        raw = merge(raw, mapping(chosen.get("trial"), f"profiles.{profile}.trial", source_of(path, profile)))
    return apply_overrides(raw, overrides)


def apply_overrides(raw: dict[str, Any], overrides: tuple[str, ...]) -> dict[str, Any]:
    """`raw` with each "key=value" merged in (aliases expanded, values parsed as YAML)."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key=value, e.g. adversarial.gamma=2.0")
        key = ALIASES.get(key.strip(), key.strip())
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: the value is not valid YAML: {_yaml_problem(err)}") from None
        raw = merge(raw, nest(key.split("."), parsed))
    return raw


def parse_run_config(raw: dict[str, Any], source: str = "config") -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"{source}: " + "; ".join(describe(err))) from None


def source_of(path: str | Path, profile: str | None) -> str:
    """How messages name a config: the YAML and its profile."""
    return f"{path}" + (f" (profile {profile})" if profile else "")


def read_space_file(path: Path) -> dict[str, Any]:
    """A search-space YAML as a mapping, its top-level keys checked."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {_yaml_problem(err)}") from None
    if not isinstance(doc, dict) or "profiles" not in doc:
        raise ConfigError(f"{path}: expected a mapping with a 'profiles' key (and optional {', '.join(SWEEP_KEYS)})")
    unknown = sorted(set(doc) - {"profiles", *SWEEP_KEYS})
    if unknown:
        raise ConfigError(f"{path}: unknown top-level keys {unknown}; allowed: profiles, {', '.join(SWEEP_KEYS)} "
                          "(run-config values belong in a profile; the schema's defaults are the rest)")
    return doc


def profile_of(doc: dict[str, Any], name: str | None, path: Path) -> dict[str, Any]:
    """The mapping of profile `name` (empty for None: the schema defaults alone)."""
    if name is None:
        return {}
    profiles = doc.get("profiles") or {}
    if name not in profiles:
        raise ConfigError(f"{path}: unknown profile {name!r}; profiles: {', '.join(profiles) or 'none'}")
    profile = profiles[name] or {}
    if not isinstance(profile, dict):
        raise ConfigError(f"{path}: profiles.{name} must be a mapping, got {profile!r}")
    return profile


def mapping(value: Any, key: str, source: str) -> dict[str, Any]:
    """`value` as a mapping (None: empty), or a ConfigError naming `key`."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {key} must be a mapping, got {value!r}")
    return value


def nest(keys: list[str], value: Any) -> dict[str, Any]:
    return {keys[0]: value} if len(keys) == 1 else {keys[0]: nest(keys[1:], value)}


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`update` merged into a copy of `base`, mappings recursively, anything else replaced."""
    out = dict(base)
    for key, value in update.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def describe(err: ValidationError) -> list[str]:
    """One "key: problem (got value)" per error; the value only when it is a scalar the user typed."""
    problems = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        value = e.get("input")
        got = f" (got {_short(value)})" if isinstance(value, (str, int, float, bool)) else ""
        problems.append(f"{key}: {e['msg']}{got}")
    return problems


def run_keys(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    """Every dotted key of the run config, sections included."""
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            keys += run_keys(field.annotation, f"{prefix}{name}.")
    return keys


def annotation_of(key: str) -> Any:
    """The type of the run-config field at dotted `key`, or None when there is no such field."""
    annotation: Any = RunConfig
    for part in key.split("."):
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)) or part not in annotation.model_fields:
            return None
        annotation = annotation.model_fields[part].annotation
    return annotation


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's error on one line: what is wrong and where (its own message spans five lines)."""
    problem = getattr(err, "problem", None)
    mark = getattr(err, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(err).split())


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
