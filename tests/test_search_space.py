"""The sweep's typed search space and settings: every shipped YAML loads and samples; bad spaces fail
early with the file, the key and the allowed values; ids and resource checks. No Ray, no MLflow."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
import yaml

from raypriv.method.config import ConfigError, RunConfig, load_run_config
from raypriv.sweep.config import apply_params, load_sweep_config
from raypriv.sweep.plan import sweep_id
from raypriv.sweep.preflight import ResourceError, check_resources
from raypriv.sweep.space import make_sampler, to_optuna

SPACES = sorted(Path("search_spaces").glob("*.yaml"))
SBU = Path("search_spaces/sbu.yaml")


def _profiles(path: Path) -> list[str | None]:
    return [None, *yaml.safe_load(path.read_text())["profiles"]]


def sample_params(config, n: int, *, seed: int = 0) -> list[dict]:
    """`n` points drawn at random from the space (an in-memory study)."""
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=seed))
    distributions = to_optuna(config.space)
    points = []
    for _ in range(n):
        trial = study.ask(distributions)
        points.append(dict(trial.params))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return points


def sample_configs(config, n: int, *, seed: int = 0) -> list[RunConfig]:
    """`n` run configs a sweep over `config` could train."""
    return [apply_params(config.run, config.space, params, source=f"{config.source} sample {i}")
            for i, params in enumerate(sample_params(config, n, seed=seed))]


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.name)
def test_every_shipped_yaml_loads_and_samples_in_every_profile(path):
    for profile in _profiles(path):
        cfg = load_sweep_config(path, profile)
        assert cfg.space, f"{path} profile {profile}: empty space"
        configs = sample_configs(cfg, 12, seed=1)
        assert len(configs) == 12 and all(isinstance(c, RunConfig) for c in configs)
        # Only the space's keys differ from the profile's run config (f_d's name is one of them).
        assert all(c.data == cfg.run.data and c.models.target == cfg.run.models.target for c in configs)
        if "models.degrader" not in cfg.space:
            assert all(c.models == cfg.run.models for c in configs)
        else:
            assert {c.models.degrader for c in configs} <= set(cfg.space["models.degrader"].choices)


def test_sbu_space_covers_the_issue_knobs():
    cfg = load_sweep_config(SBU, "quick")
    space = cfg.space
    assert space["gamma"].type == "float" and space["gamma"].log
    assert space["M"].type == "int"
    assert space["budget"].type == "options" and {c.get("policy") for c in space["budget"].choices.values()} == {"sample", "cycle"}
    assert 0 in space["restart_every"].choices  # R = 0: never restart
    assert {"alpha", "lr_degrader", "lr_target", "lr_budget"} <= set(space)
    assert (cfg.sweep.trials, cfg.sweep.concurrency, cfg.sweep.workers) == (8, 2, 1)
    smoke = load_sweep_config(SBU, "smoke")
    assert smoke.sweep.trials >= 3 and smoke.sweep.concurrency == 2
    assert set(smoke.space["budget"].choices) == {"tiny"}  # the smoke profile searches tiny models only


def test_sampled_values_land_in_the_run_config_and_in_range():
    cfg = load_sweep_config(SBU, "quick")
    for params in sample_params(cfg, 20, seed=3):
        from raypriv.sweep.config import apply_params

        run = apply_params(cfg.run, cfg.space, params)
        assert 0.25 <= run.adversarial.gamma <= 8.0 and run.adversarial.gamma == params["gamma"]
        assert run.budget.count == params["M"] and 1 <= params["M"] <= 4
        assert run.adversarial.restart_every == params["restart_every"]
        choice = cfg.space["budget"].choices[params["budget"]]
        assert run.budget.policy == choice["policy"]  # the option's section, then M over it
        assert run.adversarial.lr_degrader == params["lr_degrader"]


def test_optuna_distributions_and_samplers():
    import optuna

    cfg = load_sweep_config(SBU, "quick")
    dist = to_optuna(cfg.space)
    assert isinstance(dist["gamma"], optuna.distributions.FloatDistribution) and dist["gamma"].log
    assert isinstance(dist["M"], optuna.distributions.IntDistribution)
    assert dist["budget"].choices == tuple(cfg.space["budget"].choices)
    assert isinstance(make_sampler("tpe", seed=0, trials=8), optuna.samplers.TPESampler)
    assert isinstance(make_sampler("nsga2", seed=0, trials=8), optuna.samplers.NSGAIISampler)
    assert isinstance(make_sampler("random", seed=0, trials=8), optuna.samplers.RandomSampler)
    assert sample_params(cfg, 3, seed=5) == sample_params(cfg, 3, seed=5)  # seeded


def test_profile_space_replaces_or_removes_parameters_and_cli_settings_win(tmp_path):
    doc = yaml.safe_load(SBU.read_text())
    doc["profiles"]["smoke"]["space"]["alpha"] = None
    doc["profiles"]["smoke"]["space"]["gamma"] = {"type": "categorical", "choices": [1.0, 2.0]}
    path = tmp_path / "sbu.yaml"
    path.write_text(yaml.safe_dump(doc))
    cfg = load_sweep_config(path, "smoke", settings={"trials": 5, "seed": 7, "concurrency": None})
    assert "alpha" not in cfg.space and cfg.space["gamma"].choices == (1.0, 2.0)
    assert (cfg.sweep.trials, cfg.sweep.seed, cfg.sweep.concurrency) == (5, 7, 2)


def test_sweep_and_space_keys_in_profiles_leave_the_run_config_alone():
    assert load_run_config(SBU, "smoke").adversarial.iterations == 4  # `raypriv train` ignores them


def test_trial_blocks_apply_to_sweep_trials_only_and_overrides_win(tmp_path):
    doc = yaml.safe_load(SBU.read_text())
    doc["profiles"]["smoke"]["trial"] = {"adversarial": {"iterations": 2}, "evaluation": {"epochs": 1}}
    path = tmp_path / "sbu.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert load_run_config(path, "smoke").adversarial.iterations == 4  # `raypriv train`: no trial block
    run = load_sweep_config(path, "smoke", ("adversarial.gamma=4.0",)).run
    assert (run.adversarial.iterations, run.adversarial.gamma) == (2, 4.0)  # profile's trial, then --set
    doc["profiles"]["smoke"]["trial"] = {"adversarial": {"iterations": -1}}
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="adversarial.iterations"):
        load_sweep_config(path, "smoke")


def _with(tmp_path, edit) -> Path:
    doc = yaml.safe_load(SBU.read_text())
    edit(doc)
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("edit, messages", [
    (lambda d: d["space"].update(gama={"type": "float", "low": 1, "high": 2}),
     ["space.gama: unknown run-config key 'gama'; allowed keys:", "adversarial.gamma", "gamma (adversarial.gamma)"]),
    (lambda d: d["space"].update(gamma={"type": "floot", "low": 1, "high": 2}),
     ["space.gamma: needs a mapping with `type:` one of float, int, categorical, options"]),
    (lambda d: d["space"].update(gamma={"type": "float", "low": 2, "high": 1}),
     ["space.gamma.float: Value error, low (2.0) must not exceed high (1.0)"]),
    (lambda d: d["space"].update(gamma={"type": "float", "low": 0, "high": 1, "log": True}),
     ["space.gamma.float: Value error, a log-scale range needs low >= 0 and > 0"]),
    (lambda d: d["space"].update(gamma={"type": "float", "low": -1, "high": 1}),
     ["space.gamma low: adversarial.gamma: Input should be greater than or equal to 0"]),
    (lambda d: d["space"].update(M={"type": "float", "low": 1, "high": 3}),
     ["space.M: 'budget.count' is an integer; use type: int"]),
    (lambda d: d["space"].update(M={"type": "int", "low": 1, "high": 3, "stride": 2}),
     ["space.M.int.stride: Extra inputs are not permitted"]),
    (lambda d: d["space"]["budget"]["choices"].update(vit={"policy": "cycle", "models": ["vit_b_16"]}),
     ["space.budget choice 'vit'", "unknown budget model 'vit_b_16'; registered budget models:", "mobilenet_v2_035"]),
    (lambda d: d["space"]["budget"]["choices"].update(odd={"policy": "sample", "families": ["transformer"]}),
     ["space.budget choice 'odd'", "unknown budget families ['transformer']; registered families:"]),
    (lambda d: d["space"].update(alpha={"type": "options", "choices": {"a": {"x": 1}}}),
     ["space.alpha: 'adversarial.alpha' is a single value: type: options is for sections"]),
    (lambda d: d["space"].update(budget={"type": "categorical", "choices": [1, 2]}),
     ["space.budget: 'budget' is a section: sample it with type: options"]),
    (lambda d: d["profiles"]["smoke"]["space"]["budget"]["choices"].update(
        plain={"policy": "cycle", "models": ["plaincnn_d3_w32"]}),
     ["space.budget choice 'plain'", "evaluation.attackers ['plaincnn_d3_w32'] are of budget-model families (plaincnn)"]),
    (lambda d: d["sweep"].update(trails=3), ["sweep.trails: Extra inputs are not permitted"]),
    (lambda d: d["sweep"].update(sampler="cmaes"), ["sweep.sampler: Input should be 'tpe', 'nsga2' or 'random'"]),
    (lambda d: d.update(spaces={}), ["unknown top-level keys ['spaces']; allowed: profiles, space, sweep, arms"]),
])
def test_bad_spaces_name_the_file_the_key_and_the_allowed_values(tmp_path, edit, messages):
    path = _with(tmp_path, edit)
    # quick keeps the top-level space but restart_every; smoke replaces M, budget and restart_every.
    profile = "smoke" if "'plain'" in messages[0] else "quick"
    with pytest.raises(ConfigError) as err:
        load_sweep_config(path, profile)
    assert str(path) in str(err.value)
    for message in messages:
        assert message in str(err.value)


def test_data_parallel_workers_count_in_the_resource_check():
    two = load_sweep_config(SBU, "smoke", settings={"workers": 2, "concurrency": 1})  # 0.1 + 2 x 0.9 CPUs
    check_resources(two.sweep, {"CPU": 2.0}, use_gpu=False, source=two.source)
    both = load_sweep_config(SBU, "smoke", settings={"workers": 2})  # 2 trials at a time: 3.8 CPUs
    with pytest.raises(ResourceError, match=r"--concurrency 2 x 1.9 CPUs per trial = 3.8 CPUs, but the cluster has 2"):
        check_resources(both.sweep, {"CPU": 2.0}, use_gpu=False, source=both.source)
    with pytest.raises(ResourceError, match=r"2 worker\(s\) x 1 GPU = 2 GPUs, but the cluster has 1"):
        check_resources(two.sweep, {"CPU": 8.0, "GPU": 1.0}, use_gpu=True, source=two.source)


def test_sweep_id_is_deterministic_and_tracks_what_changes_results():
    base = load_sweep_config(SBU, "smoke")
    same = sweep_id(load_sweep_config(SBU, "smoke", settings={"trials": 9, "concurrency": 1}), synthetic=True, root=None)
    assert sweep_id(base, synthetic=True, root=None) == same  # trials and concurrency do not enter
    assert same.startswith("sbu-smoke-tpe-s0-") and len(same.rsplit("-", 1)[1]) == 8
    others = {
        sweep_id(load_sweep_config(SBU, "smoke", settings={"seed": 1}), synthetic=True, root=None),
        sweep_id(load_sweep_config(SBU, "smoke", ("gamma=1.0",)), synthetic=True, root=None),
        sweep_id(base, synthetic=False, root="/data/sbu"),
        sweep_id(load_sweep_config(SBU, "smoke", settings={"sampler": "random"}), synthetic=True, root=None),
    }
    assert len(others) == 4 and same not in others


def test_resource_check_fails_clearly_instead_of_hanging():
    smoke = load_sweep_config(SBU, "smoke")  # 2 x (0.1 + 0.9) CPUs
    check_resources(smoke.sweep, {"CPU": 2.0}, use_gpu=False, source=smoke.source)
    with pytest.raises(ResourceError, match=r"--concurrency 2 x 1 CPUs per trial = 2 CPUs, but the cluster has 1; .*Use --concurrency 1"):
        check_resources(smoke.sweep, {"CPU": 1.0}, use_gpu=False, source=smoke.source)
    big = load_sweep_config(SBU, "full")  # 0.1 + 4 CPUs per trial
    with pytest.raises(ResourceError, match=r"one trial needs 0.1 CPU for its Tune function \+ 1 worker\(s\) x 4 CPU = 4.1 CPUs, but the cluster has 2"):
        check_resources(big.sweep, {"CPU": 2.0}, use_gpu=False, source=big.source)
    with pytest.raises(ResourceError, match="= 8 GPUs, but the cluster has 1"):
        check_resources(big.sweep, {"CPU": 64.0, "GPU": 1.0}, use_gpu=True, source=big.source)
    assert math.isclose(smoke.sweep.trial_cpus + smoke.sweep.cpus_per_worker, 1.0)
