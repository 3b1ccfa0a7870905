"""The one typed run configuration: frozen pydantic models, unknown keys are errors.

A run config comes from a search-space YAML (`search_spaces/<experiment>.yaml`): its `base`
mapping, then one named profile (`smoke`, `quick`, `full`) merged over it, then `--set key=value`
overrides (dotted keys, YAML values). Every model name is checked against the registries.

`raypriv sweep` adds the YAML's `space` (what Optuna samples) and `sweep` (trials, concurrency,
resources, sampler) sections: `load_sweep_config` resolves and checks them into a `SweepConfig`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from raypriv.adversarial.losses import PRIVACY_LOSSES


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Frozen):
    dataset: Literal["sbu"] = "sbu"
    preset: Literal["tiny", "small", "laptop", "paper"] = "laptop"
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
    # After the last iteration, f_T and f_d take L_T steps until f_T's validation accuracy exceeds
    # threshold1 (Algorithm 1's while loop, checked every `target_max_steps` steps), at most this many.
    final_target_max_steps: int = Field(0, ge=0)
    # Frames per clip the budget models see in the adversarial and budget phases (None: all):
    # they average over frames anyway, and fewer frames make every iteration cheaper.
    budget_frames: int | None = Field(None, ge=1)
    target_check_every: int = Field(1, ge=1)  # check f_T's validation accuracy every k iterations
    lr_degrader: float = Field(1e-3, gt=0)
    lr_target: float = Field(1e-3, gt=0)
    lr_budget: float = Field(1e-3, gt=0)


class PretrainConfig(_Frozen):
    degrader_steps: int = Field(100, ge=0)  # reconstruction of X before anything else
    target_epochs: int = Field(10, ge=0)  # f_T (jointly with f_d) on the action
    budget_epochs: int = Field(10, ge=0)  # each f_b on frozen f_d(X), to confidence
    patience: int = Field(4, ge=1)
    # f_d + f_T pre-trained this many times from the one reconstruction (each with its own f_T
    # initialisation and batch order); the best validation accuracy on the action is kept.
    target_candidates: int = Field(1, ge=1)


class EvaluationConfig(_Frozen):
    attackers: tuple[str, ...] | None = None  # None: chosen from families unused by the budget models
    num_attackers: int = Field(6, ge=1)
    video_attacker: str | None = "c3d_lite"
    epochs: int = Field(25, ge=1)
    patience: int = Field(6, ge=1)
    # Frames per clip in each training batch of a frame-level attacker (None: all); tested on all.
    train_frames: int | None = Field(None, ge=1)
    # On the CPU, models fitted at once in separate one-thread processes (set it to the cores you
    # have; inside a Ray Train worker, to that worker's CPUs). Results do not depend on it.
    workers: int = Field(1, ge=1)


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
    "lr_degrader": "adversarial.lr_degrader",
    "lr_target": "adversarial.lr_target",
    "lr_budget": "adversarial.lr_budget",
}


class ConfigError(ValueError):
    """A config file or override is wrong; the message names the file, the key and what is allowed."""


def load_run_config(
    path: str | Path, profile: str | None = None, overrides: tuple[str, ...] = (), *, sweep_trial: bool = False
) -> RunConfig:
    """Resolve `base` + `profiles[profile]` + `overrides` ("a.b=value") from a search-space YAML.

    With `sweep_trial`, the `trial:` mappings (top level, then the profile's) are merged before the
    overrides: what one sweep trial changes from the profile's run config (the search's fidelity).
    """
    path = Path(path)
    doc = _read_space_file(path)
    raw = copy.deepcopy(doc["base"]) or {}
    chosen = _profile(doc, profile, path) if profile is not None else {}
    # A profile's `sweep`, `space` and `trial` keys belong to `raypriv sweep` (load_sweep_config).
    raw = _merge(raw, {k: v for k, v in chosen.items() if k not in _SWEEP_KEYS})
    source = f"{path}" + (f" (profile {profile})" if profile else "")
    if sweep_trial:
        for key, trial in (("trial", doc.get("trial")), (f"profiles.{profile}.trial", chosen.get("trial"))):
            raw = _merge(raw, _mapping(trial, key, source))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key=value, e.g. adversarial.gamma=2.0")
        key = ALIASES.get(key.strip(), key.strip())
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: the value is not valid YAML: {_yaml_problem(err)}") from None
        raw = _merge(raw, _nest(key.split("."), parsed))
    run = parse_run_config(raw, source=source)
    # Before any training: an attacker set that overlaps the budget families would only be refused
    # by the evaluation, after the whole adversarial phase had run.
    _check_attackers(run, source)
    return run


def parse_run_config(raw: dict[str, Any], source: str = "config") -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"{source}: " + "; ".join(_describe(err))) from None


def _read_space_file(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {_yaml_problem(err)}") from None
    if not isinstance(doc, dict) or "base" not in doc:
        raise ConfigError(f"{path}: expected a mapping with a 'base' key (and optional 'profiles')")
    unknown = sorted(set(doc) - {"base", "profiles", *_SWEEP_KEYS})
    if unknown:
        raise ConfigError(f"{path}: unknown top-level keys {unknown}; allowed: base, profiles, {', '.join(_SWEEP_KEYS)}")
    return doc


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's error on one line: what is wrong and where (its own message spans five lines)."""
    problem = getattr(err, "problem", None)
    mark = getattr(err, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(err).split())


def _profile(doc: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    profiles = doc.get("profiles") or {}
    if name not in profiles:
        raise ConfigError(f"{path}: unknown profile {name!r}; profiles: {', '.join(profiles) or 'none'}")
    profile = profiles[name] or {}
    if not isinstance(profile, dict):
        raise ConfigError(f"{path}: profiles.{name} must be a mapping, got {profile!r}")
    return profile


def _nest(keys: list[str], value: Any) -> dict[str, Any]:
    return {keys[0]: value} if len(keys) == 1 else {keys[0]: _nest(keys[1:], value)}


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# --- Search spaces and sweep settings (`raypriv sweep`) ------------------------------------------
#
# A search-space YAML may also hold `space:` (what Optuna samples over the resolved run config)
# and `sweep:` (how the sweep runs). A profile may override both: its `sweep` keys replace the
# top-level ones, and each parameter in its `space` replaces the top-level one of that name
# (`null` removes it), so `smoke` can search tiny models only. `trial:` (top level, then the
# profile's) is run config that only sweep trials apply over the profile: a cheaper search
# fidelity (fewer iterations and epochs), so a sweep's many trials fit where one full run fits.

_SWEEP_KEYS = ("space", "sweep", "trial")


class FloatParam(_Frozen):
    """A float from [low, high]: log-uniform with `log` (γ, learning rates), else uniform."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _range(self) -> "FloatParam":
        _check_range(self.low, self.high, self.log, self.step is not None, log_low=0)
        return self


class IntParam(_Frozen):
    """An integer from [low, high], both included, every `step`; log-uniform with `log`."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _range(self) -> "IntParam":
        _check_range(self.low, self.high, self.log, self.step != 1, log_low=1)
        return self


class CategoricalParam(_Frozen):
    """One of `choices` (numbers, strings, booleans, null), e.g. R in [0, 20, 40] where 0 = never."""

    type: Literal["categorical"]
    choices: tuple[bool | int | float | str | None, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> "CategoricalParam":
        if len(set(map(repr, self.choices))) != len(self.choices):
            raise ValueError(f"choices must be unique, got {list(self.choices)}")
        return self


class OptionsParam(_Frozen):
    """Named partial configs of one section (e.g. budget-model zoos); Optuna samples the name."""

    type: Literal["options"]
    choices: dict[str, dict[str, Any]] = Field(min_length=1)


SpaceParam = Annotated[Union[FloatParam, IntParam, CategoricalParam, OptionsParam], Field(discriminator="type")]
PARAM_TYPES = ("float", "int", "categorical", "options")


class SweepSettings(_Frozen):
    """How `raypriv sweep` runs; --trials, --concurrency, --workers, --sampler and --seed override."""

    trials: int = Field(8, ge=1)
    concurrency: int = Field(1, ge=1)  # trials running at once
    # Ray Train workers per trial. The adversarial loop is a single process (no data parallelism),
    # so a second worker would only hold a CPU or GPU idle: 1 until the loop is data-parallel.
    workers: int = Field(1, ge=1)
    cpus_per_worker: float = Field(1.0, gt=0)  # also the worker's torch threads (Ray sets OMP_NUM_THREADS)
    trial_cpus: float = Field(0.1, ge=0)  # the Tune function that only drives the trial's TorchTrainer
    use_gpu: bool | None = None  # None: one GPU per worker when the cluster has GPUs
    sampler: Literal["tpe", "nsga2", "random"] = "tpe"
    seed: int = 0  # the sampler's seed; part of the sweep id
    max_failures: int = Field(1, ge=0)  # Ray Train restarts of a trial whose worker failed

    @model_validator(mode="after")
    def _one_worker(self) -> "SweepSettings":
        if self.workers != 1:
            raise ValueError(
                f"workers per trial must be 1, got {self.workers}: the adversarial loop runs in one process "
                "(no data parallelism yet), so more Ray Train workers would only hold resources idle"
            )
        return self


class SweepConfig(_Frozen):
    """A resolved sweep: the run config every trial starts from, the space sampled over it, the settings."""

    name: str  # the search space's name (its YAML's stem): the MLflow experiment and the sweep id's prefix
    source: str  # the YAML (and profile), for messages
    profile: str | None
    run: RunConfig
    space: dict[str, SpaceParam]
    sweep: SweepSettings


def space_key(name: str) -> str:
    """The run-config key a space parameter sets: its name, or what the alias stands for (`M` -> `budget.count`)."""
    return ALIASES.get(name, name)


def apply_params(run: RunConfig, space: dict[str, Any], params: dict[str, Any], source: str = "sampled parameters") -> RunConfig:
    """`run` with sampled `params` (space name -> value; the choice's name for an options parameter)."""
    raw = run.model_dump(mode="json")
    unknown = sorted(set(params) - set(space))
    if unknown:
        raise ConfigError(f"{source}: parameters {unknown} are not in the space ({', '.join(space)})")
    # Whole sections first (e.g. the budget zoo), then single fields over them (e.g. M).
    for name, value in sorted(params.items(), key=lambda item: not isinstance(space[item[0]], OptionsParam)):
        param = space[name]
        if isinstance(param, OptionsParam):
            if value not in param.choices:
                raise ConfigError(f"{source}: {name}={value!r} is not one of {list(param.choices)}")
            value = param.choices[value]
        raw = _merge(raw, _nest(space_key(name).split("."), value))
    return parse_run_config(raw, source)


def load_sweep_config(
    path: str | Path,
    profile: str | None = None,
    overrides: tuple[str, ...] = (),
    settings: dict[str, Any] | None = None,
) -> SweepConfig:
    """Resolve a sweep from a search-space YAML: the run config (as `load_run_config`), the space
    and sweep settings of `profile`, then `settings` (values from the command line; None = keep).

    Every space parameter is checked against the run-config schema and the model registries at its
    bounds and at each of its choices, so a bad space fails here, before Ray or MLflow start.
    """
    path = Path(path)
    run = load_run_config(path, profile, overrides, sweep_trial=True)
    doc = _read_space_file(path)
    chosen = _profile(doc, profile, path) if profile is not None else {}
    source = f"{path}" + (f" (profile {profile})" if profile else "")
    space = dict(_mapping(doc.get("space"), "space", source))
    for name, param in _mapping(chosen.get("space"), f"profiles.{profile}.space", source).items():
        if param is None:
            space.pop(name, None)
        else:
            space[name] = param
    if not space:
        raise ConfigError(f"{source}: no `space:` to search; see search_spaces/README.md")
    for name, param in space.items():
        if not isinstance(param, dict) or param.get("type") not in PARAM_TYPES:
            raise ConfigError(f"{source}: space.{name}: needs a mapping with `type:` one of {', '.join(PARAM_TYPES)}")
    sweep = {
        **_mapping(doc.get("sweep"), "sweep", source),
        **_mapping(chosen.get("sweep"), f"profiles.{profile}.sweep", source),
        **{k: v for k, v in (settings or {}).items() if v is not None},
    }
    try:
        cfg = SweepConfig.model_validate(
            {"name": path.stem, "source": source, "profile": profile, "run": run, "space": space, "sweep": sweep}
        )
    except ValidationError as err:
        raise ConfigError(f"{source}: " + "; ".join(_describe(err))) from None
    _check_space(cfg)
    return cfg


def _check_range(low: float, high: float, log: bool, stepped: bool, *, log_low: float) -> None:
    if low > high:
        raise ValueError(f"low ({low}) must not exceed high ({high})")
    if log and (low <= 0 or low < log_low):
        raise ValueError(f"a log-scale range needs low >= {log_low} and > 0, got {low}")
    if log and stepped:
        raise ValueError("log and step cannot be combined")


def _mapping(value: Any, key: str, source: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {key} must be a mapping, got {value!r}")
    return value


def _describe(err: ValidationError) -> list[str]:
    """One "key: problem (got value)" per error; the value only when it is a scalar the user typed."""
    problems = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        value = e.get("input")
        got = f" (got {_short(value)})" if isinstance(value, (str, int, float, bool)) else ""
        problems.append(f"{key}: {e['msg']}{got}")
    return problems


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _run_keys(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    """Every dotted key of the run config, sections included."""
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            keys += _run_keys(field.annotation, f"{prefix}{name}.")
    return keys


def _annotation(key: str) -> Any:
    """The type of the run-config field at dotted `key`, or None when there is no such field."""
    annotation: Any = RunConfig
    for part in key.split("."):
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)) or part not in annotation.model_fields:
            return None
        annotation = annotation.model_fields[part].annotation
    return annotation


def _check_space(cfg: SweepConfig) -> None:
    """Each parameter names a real key of the right kind, and every bound and choice makes a valid run."""
    for name, param in cfg.space.items():
        key = space_key(name)
        annotation = _annotation(key)
        if annotation is None:
            raise ConfigError(
                f"{cfg.source}: space.{name}: unknown run-config key {key!r}; allowed keys: {', '.join(_run_keys())}; "
                f"short names: {', '.join(f'{a} ({k})' for a, k in ALIASES.items())}"
            )
        section = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if isinstance(param, OptionsParam) != section:
            raise ConfigError(
                f"{cfg.source}: space.{name}: {key!r} is " + (
                    "a section: sample it with type: options (named partial configs), or sample one of its fields"
                    if section else "a single value: type: options is for sections (e.g. budget, models)")
            )
        if isinstance(param, FloatParam) and annotation is int:
            raise ConfigError(f"{cfg.source}: space.{name}: {key!r} is an integer; use type: int")
        if isinstance(param, (FloatParam, IntParam)):
            corners = [("low", param.low), ("high", param.high)]
        else:
            corners = [(f"choice {c!r}", c) for c in param.choices]
        for label, value in corners:
            where = f"{cfg.source}: space.{name} {label}"
            run = apply_params(cfg.run, cfg.space, {name: value}, source=where)
            _check_attackers(run, where)


def _check_attackers(run: RunConfig, where: str) -> None:
    """The two-fold evaluation can find attackers outside the families the budget models may use."""
    from raypriv.evaluation.two_fold import select_attackers
    from raypriv.models import BUDGETS

    budget = run.budget
    families = {BUDGETS.spec(n).family for n in budget.models} if budget.policy == "cycle" else set(budget.families)
    if run.evaluation.attackers is not None:
        clash = [a for a in run.evaluation.attackers if BUDGETS.spec(a).family in families]
        if clash:
            raise ConfigError(
                f"{where}: evaluation.attackers {clash} are of budget-model families ({', '.join(sorted(families))}); "
                "the two-fold evaluation needs attackers of families never used as budget models"
            )
        return
    try:
        select_attackers(families, n=run.evaluation.num_attackers, seed=run.seed)
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None
