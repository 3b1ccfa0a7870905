"""The run config schema and the shipped search-space YAMLs."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest

import raypriv.method.config as schema
from raypriv.method.config import ConfigError, RunConfig, load_run_config
from raypriv.method.losses import LOSSES
from raypriv.method.run import resolve_run_config

SPACES = sorted(Path("search_spaces").glob("*.yaml"))


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.name)
def test_every_shipped_yaml_and_profile_loads(path):
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# raypriv "), "a search space starts with the command that runs it"
    import yaml

    for profile in [None, *yaml.safe_load(path.read_text())["profiles"]]:
        assert isinstance(resolve_run_config(path, profile), RunConfig)


def test_overrides_are_typed_and_dotted():
    cfg = load_run_config("search_spaces/sbu.yaml", "quick", ("adversarial.gamma=0.5", "budget.count=6"))
    assert cfg.adversarial.gamma == 0.5 and cfg.budget.count == 6


@pytest.mark.parametrize(
    "override, message",
    [
        ("adversarial.gama=1", "adversarial.gama: Extra inputs are not permitted"),
        ("adversarial.gamma=-1", "adversarial.gamma: Input should be greater than or equal to 0"),
        ("budget.count=many", "budget.count: Input should be a valid integer"),
        ("models.degrader=unet", "unknown degrader model 'unet'; registered degrader models: degrader_base"),
        ("budget.families=[vit]", "unknown budget families ['vit']"),
        ("adversarial.privacy_loss=kl", "adversarial.privacy_loss: Input should be 'neg_entropy', 'uniform_ce', 'neg_binary_entropy' or 'prior_binary_kl'"),
        ("gamma", "override 'gamma' must look like key=value"),
        # refused before training, not by the evaluation after the adversarial phase
        ("evaluation.attackers=[smallcnn_d2_w16]",
         "evaluation.attackers ['smallcnn_d2_w16'] are of budget-model families (smallcnn)"),
        ("evaluation.min_epochs=99", "evaluation: Value error, min_epochs (99) exceeds epochs"),
    ],
)
def test_bad_values_name_the_key_and_the_allowed_values(override, message):
    with pytest.raises(ConfigError) as err:
        resolve_run_config("search_spaces/sbu.yaml", "smoke", (override,))
    assert message in str(err.value)
    assert "search_spaces/sbu.yaml" in str(err.value) or "override" in str(err.value)


def test_unknown_profile_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown profile 'huge'; profiles: smoke, quick, full"):
        load_run_config("search_spaces/sbu.yaml", "huge")
    with pytest.raises(ConfigError, match="does not exist"):
        load_run_config(tmp_path / "nope.yaml")


def test_short_aliases_for_the_main_knobs():
    cfg = load_run_config("search_spaces/sbu.yaml", "smoke", ("gamma=0.25", "M=3", "restart_every=0"))
    assert (cfg.adversarial.gamma, cfg.budget.count, cfg.adversarial.restart_every) == (0.25, 3, 0)


def test_the_schema_imports_nothing_from_raypriv_and_every_loss_it_names_exists():
    tree = ast.parse(Path(schema.__file__).read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module] + [
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m.startswith("raypriv")], imported
    assert set(LOSSES) == set(typing.get_args(schema.PrivacyLoss))


def test_profiles_only_state_what_they_change_from_the_schema_defaults(tmp_path):
    # the schema's defaults are the base: a YAML `base:` (a second set of defaults) is refused
    path = tmp_path / "old.yaml"
    path.write_text("base: {seed: 0}\nprofiles: {smoke: {}}\n")
    with pytest.raises(ConfigError, match=r"unknown top-level keys \['base'\]"):
        load_run_config(path, "smoke")
    assert load_run_config("search_spaces/sbu.yaml") == RunConfig()


def test_an_option_at_its_neutral_value_leaves_the_digest_as_it_was():
    from raypriv.sweep.plan import config_digest

    run = resolve_run_config("search_spaces/sbu.yaml", "smoke", ())
    assert run.evaluation.min_epochs == 0 and "min_epochs" not in schema.fingerprint(run)["evaluation"]
    dump = run.model_dump(mode="json")
    del dump["evaluation"]["min_epochs"]
    assert schema.fingerprint(run) == dump  # the digest of a config written before the option existed
    later = resolve_run_config("search_spaces/sbu.yaml", "smoke", ("evaluation.min_epochs=1",))
    assert schema.fingerprint(later)["evaluation"]["min_epochs"] == 1 and config_digest(later) != config_digest(run)
