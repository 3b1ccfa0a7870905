"""What `raypriv sweep` and `raypriv compare` read besides the run config: the search space, the
sweep settings and the comparison arms of a search-space YAML.

- `space:` what Optuna samples over the profile's run config (a profile's `space:` replaces
  parameters of the same name, `null` removes one); checked at every bound and choice before
  anything starts.
- `sweep:` how trials run (`SweepSettings`; a profile's keys, then the command line, win), and
  the confirmation stage: how many screening configurations to re-run at the full protocol, with
  how many seeds, beside which control arm and baselines.
- `arms:` named partial run configs that `raypriv compare` runs side by side (a profile's `arms:`
  replace arms of the same name). Arms and sampled points are the last layer of the run config
  (raypriv.method.config), so `--set` changes what every arm starts from, never what an arm is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, ValidationError, field_validator, model_validator

from raypriv.method.config import (ALIASES, ConfigError, RunConfig, Frozen, annotation_of, describe, mapping, merge,
                                   nest, parse_run_config, profile_of, read_space_file, run_keys, run_mapping,
                                   source_of)


def check_run_config(run: RunConfig, source: str) -> RunConfig:
    """`raypriv.method.run.check_run_config`, imported on first use: the Ray processes that unpickle
    a plan (a trial's Tune actor, its Train controller) then load the schema without torch and the
    model registry (about 2 s of CPU per process)."""
    from raypriv.method.run import check_run_config as check

    return check(run, source)


class FloatParam(Frozen):
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


class IntParam(Frozen):
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


class CategoricalParam(Frozen):
    """One of `choices` (numbers, strings, booleans, null), e.g. R in [0, 20, 40] where 0 = never."""

    type: Literal["categorical"]
    choices: tuple[bool | int | float | str | None, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> "CategoricalParam":
        if len(set(map(repr, self.choices))) != len(self.choices):
            raise ValueError(f"choices must be unique, got {list(self.choices)}")
        return self


class OptionsParam(Frozen):
    """Named partial configs of one section (e.g. budget-model zoos); Optuna samples the name."""

    type: Literal["options"]
    choices: dict[str, dict[str, Any]] = Field(min_length=1)


SpaceParam = Annotated[Union[FloatParam, IntParam, CategoricalParam, OptionsParam], Field(discriminator="type")]
PARAM_TYPES = ("float", "int", "categorical", "options")


class SweepSettings(Frozen):
    """How `raypriv sweep` runs; --trials, --concurrency, --workers, --sampler and --seed override."""

    trials: int = Field(8, ge=1)
    concurrency: int = Field(1, ge=1)  # trials running at once
    # Ray Train workers per trial: data-parallel ranks of the one loop (each takes its shard of
    # every global batch; raypriv.method.engine), one GPU each when the cluster has GPUs.
    workers: int = Field(1, ge=1)
    cpus_per_worker: float = Field(1.0, gt=0)  # also the worker's torch threads (Ray sets OMP_NUM_THREADS)
    trial_cpus: float = Field(0.1, ge=0)  # the Tune function that only drives the trial's TorchTrainer
    use_gpu: bool | None = None  # None: one GPU per worker when the cluster has GPUs
    sampler: Literal["tpe", "nsga2", "random"] = "tpe"
    seed: int = 0  # the sampler's seed; part of the sweep id
    max_failures: int = Field(1, ge=0)  # Ray Train restarts of a trial whose worker failed
    # The confirmation stage (raypriv.sweep.confirm): screening ranks configurations at a cheap
    # fidelity with one seed, while the seed alone moves A_B^N by 20 points (docs/design.md), so the
    # `confirm` best are re-run at the full protocol with `replicates` seeds each, beside the
    # control arm and the baselines at the same seeds. 0: screening only.
    confirm: int = Field(0, ge=0)
    replicates: int = Field(3, ge=1)
    control_arm: str | None = "no_game"  # an arm of `arms:`; null: no control
    confirm_baselines: tuple[str, ...] = ("raw", "downsample_s2", "downsample_s4", "downsample_s8", "downsample_s16")

    @field_validator("confirm_baselines")
    @classmethod
    def _known_baselines(cls, methods: tuple[str, ...]) -> tuple[str, ...]:
        from raypriv.method.baselines import METHODS

        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown baselines {unknown}; known: {', '.join(METHODS)}")
        return methods


class SweepConfig(Frozen):
    """A resolved sweep: the run config every trial starts from, the space sampled over it, the settings."""

    name: str  # the search space's name (its YAML's stem): the MLflow experiment and the sweep id's prefix
    source: str  # the YAML (and profile), for messages
    profile: str | None
    run: RunConfig
    space: dict[str, SpaceParam]
    sweep: SweepSettings
    # The confirmation stage's run configs (when sweep.confirm > 0): the profile at the full
    # protocol (without its `trial:` fidelity, with --set), and the control arm over it.
    confirm_run: RunConfig | None = None
    control_run: RunConfig | None = None


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
        raw = merge(raw, nest(space_key(name).split("."), value))
    return check_run_config(parse_run_config(raw, source), source)


def load_sweep_config(
    path: str | Path,
    profile: str | None = None,
    overrides: tuple[str, ...] = (),
    settings: dict[str, Any] | None = None,
) -> SweepConfig:
    """Resolve a sweep from a search-space YAML: the run config of its screening trials (the profile,
    its `trial:`, the overrides), the space and sweep settings of `profile`, then `settings` (values
    from the command line; None = keep); with a confirmation stage, its full-protocol and control
    run configs.

    Every space parameter is checked against the run-config schema and the model registries at its
    bounds and at each of its choices (at the full protocol too, with a confirmation stage), so a
    bad space fails here, before Ray or MLflow start.
    """
    path = Path(path)
    source = source_of(path, profile)
    run = check_run_config(parse_run_config(run_mapping(path, profile, overrides, sweep_trial=True), source), source)
    doc = read_space_file(path)
    chosen = profile_of(doc, profile, path)
    space = dict(mapping(doc.get("space"), "space", source))
    for name, param in mapping(chosen.get("space"), f"profiles.{profile}.space", source).items():
        if param is None:
            space.pop(name, None)
        else:
            space[name] = param
    if not space:
        raise ConfigError(f"{source}: no `space:` to search; see docs/configuration.md")
    for name, param in space.items():
        if not isinstance(param, dict) or param.get("type") not in PARAM_TYPES:
            raise ConfigError(f"{source}: space.{name}: needs a mapping with `type:` one of {', '.join(PARAM_TYPES)}")
    sweep = _settings_mapping(doc, chosen, profile, source, settings)
    try:
        cfg = SweepConfig.model_validate(
            {"name": path.stem, "source": source, "profile": profile, "run": run, "space": space, "sweep": sweep}
        )
    except ValidationError as err:
        raise ConfigError(f"{source}: " + "; ".join(describe(err))) from None
    _check_space(cfg, cfg.run)
    if cfg.sweep.confirm:
        confirm_run = check_run_config(parse_run_config(run_mapping(path, profile, overrides), source), source)
        _check_space(cfg, confirm_run, " at the full protocol (sweep.confirm)")
        control = cfg.sweep.control_arm
        control_run = None if control is None else _arm_run(
            confirm_run.model_dump(mode="json"), _declared_arms(doc, chosen, profile, source), control,
            f"{source}: sweep.control_arm", source)
        cfg = cfg.model_copy(update={"confirm_run": confirm_run, "control_run": control_run})
    return cfg


def _settings_mapping(doc: dict, chosen: dict, profile: str | None, source: str,
                      settings: dict[str, Any] | None) -> dict[str, Any]:
    """The sweep settings: the YAML's `sweep:`, the profile's, then the command line's (None = keep)."""
    return {
        **mapping(doc.get("sweep"), "sweep", source),
        **mapping(chosen.get("sweep"), f"profiles.{profile}.sweep", source),
        **{k: v for k, v in (settings or {}).items() if v is not None},
    }


def _declared_arms(doc: dict, chosen: dict, profile: str | None, source: str) -> dict[str, Any]:
    """The YAML's `arms:`, a profile's `arms:` replacing arms of the same name."""
    return {**mapping(doc.get("arms"), "arms", source), **mapping(chosen.get("arms"), f"profiles.{profile}.arms", source)}


def _arm_run(base: dict[str, Any], declared: dict[str, Any], arm: str, where: str, source: str,
             seed: int | None = None) -> RunConfig:
    """Arm `arm` merged over the run-config mapping `base` (then `seed`), checked; `where` names it in errors."""
    if arm not in declared:
        raise ConfigError(f"{where}: unknown arm {arm!r}; declared arms: {', '.join(declared) or 'none'} (`arms:`)")
    raw = merge(base, mapping(declared[arm], f"arms.{arm}", source))
    if seed is not None:
        raw = merge(raw, {"seed": seed})
    return check_run_config(parse_run_config(raw, where), where)


def _check_range(low: float, high: float, log: bool, stepped: bool, *, log_low: float) -> None:
    if low > high:
        raise ValueError(f"low ({low}) must not exceed high ({high})")
    if log and (low <= 0 or low < log_low):
        raise ValueError(f"a log-scale range needs low >= {log_low} and > 0, got {low}")
    if log and stepped:
        raise ValueError("log and step cannot be combined")


def _check_space(cfg: SweepConfig, run: RunConfig, at: str = "") -> None:
    """Each parameter names a real key of the right kind, and every bound and choice makes a valid run
    over `run` (`at` says which run config, in messages)."""
    for name, param in cfg.space.items():
        key = space_key(name)
        annotation = annotation_of(key)
        if annotation is None:
            raise ConfigError(
                f"{cfg.source}: space.{name}: unknown run-config key {key!r}; allowed keys: {', '.join(run_keys())}; "
                f"short names: {', '.join(f'{a} ({k})' for a, k in ALIASES.items())}"
            )
        section = isinstance(annotation, type) and issubclass(annotation, Frozen)
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
            apply_params(run, cfg.space, {name: value}, source=f"{cfg.source}: space.{name} {label}{at}")


class ArmRun(Frozen):
    """One run of a comparison: an arm at a seed, and its resolved run config."""

    arm: str
    seed: int
    run: RunConfig


class CompareConfig(Frozen):
    """A resolved comparison: every arm x seed as a full-protocol run config, and how the runs are scheduled."""

    name: str  # the search space's name: the MLflow experiment
    source: str
    profile: str | None
    arms: tuple[str, ...]
    seeds: tuple[int, ...]
    runs: tuple[ArmRun, ...]  # arm-major: every seed of the first arm, then the next arm
    sweep: SweepSettings


def load_compare_config(
    path: str | Path,
    profile: str | None,
    arms: tuple[str, ...],
    seeds: tuple[int, ...],
    overrides: tuple[str, ...] = (),
    settings: dict[str, Any] | None = None,
) -> CompareConfig:
    """Resolve `raypriv compare`: each arm of the YAML's `arms:` (a profile's `arms:` replace arms of
    the same name) merged over the profile and `overrides` (no `trial:` fidelity: comparisons run
    the full protocol), at each seed (`seed`: model initialisation, batch order and attacker draw).
    """
    path = Path(path)
    source = source_of(path, profile)
    doc = read_space_file(path)
    chosen = profile_of(doc, profile, path)
    declared = _declared_arms(doc, chosen, profile, source)
    if not arms:
        raise ConfigError(f"{source}: name at least one arm; declared arms: {', '.join(declared) or 'none'}")
    unknown = [a for a in arms if a not in declared]
    if unknown:
        raise ConfigError(f"{source}: unknown arm(s) {unknown}; declared arms: {', '.join(declared) or 'none'} (`arms:`)")
    if len(set(arms)) != len(arms) or len(set(seeds)) != len(seeds) or not seeds:
        raise ConfigError(f"{source}: arms and seeds must be non-empty and distinct, got arms {list(arms)}, seeds {list(seeds)}")
    base = run_mapping(path, profile, overrides)
    runs = [ArmRun(arm=arm, seed=seed, run=_arm_run(base, declared, arm, f"{source}: arm {arm!r}, seed {seed}",
                                                   source, seed))
            for arm in arms for seed in seeds]
    sweep = _settings_mapping(doc, chosen, profile, source, settings)
    try:
        return CompareConfig(name=path.stem, source=source, profile=profile, arms=tuple(arms), seeds=tuple(seeds),
                             runs=tuple(runs), sweep=SweepSettings.model_validate(sweep))
    except ValidationError as err:
        raise ConfigError(f"{source}: " + "; ".join(describe(err))) from None
