"""The confirmation stage of a sweep, what it plans before Ray starts: which trials it confirms,
its runs (full protocol, paired seeds, names, tags, baselines only on synthetic data), its settings'
checks, and a resume with other options refused. No Ray, no MLflow."""

from __future__ import annotations

import pytest
import yaml

from raypriv.method.config import ConfigError
from raypriv.sweep.config import load_sweep_config
from raypriv.sweep.confirm import choose, confirmation_specs
from raypriv.sweep.plan import config_digest, spec_digest
from test_confirmation import _record

SBU = "search_spaces/sbu.yaml"


def test_choose_takes_complete_screening_trials_only():
    records = [_record(0, 0.5, 0.5), _record(1, 0.9, 0.05, status="FAILED"), _record(2, 0.8, 0.3), _record(3, 0.6, 0.1)]
    assert [r.trial for r in choose(records, 2)] == ["trial_0002", "trial_0003"]


def test_confirmation_runs_are_the_full_protocol_at_paired_seeds():
    cfg = load_sweep_config(SBU, "quick", ("seed=5",), {"confirm": 2, "replicates": 2})
    chosen = [("trial_0003", {"restart_every": 10}), ("trial_0001", {"restart_every": 20})]
    specs = confirmation_specs(cfg, chosen, synthetic=True)
    assert [s.name for s in specs] == [
        "trial_0003_s5", "trial_0003_s6", "trial_0001_s5", "trial_0001_s6", "no_game_s5", "no_game_s6",
        "raw_s5", "raw_s6", "downsample_s4_s5", "downsample_s4_s6", "downsample_s8_s5", "downsample_s8_s6"]
    assert [s.number for s in specs] == list(range(12))
    first = specs[0]
    assert first.tags == {"raypriv.stage": "confirm", "raypriv.confirms": "trial_0003", "raypriv.arm": "trial_0003",
                          "raypriv.seed": "5"}
    assert first.params == {"restart_every": 10} and first.baseline is None
    assert cfg.run.data.preset == "small" and first.run.data.preset == "laptop"  # no trial: fidelity
    assert first.run.adversarial.restart_every == 10 and first.run.seed == 5 and specs[1].run.seed == 6
    control = specs[4]
    assert control.tags["raypriv.stage"] == "control" and control.run.adversarial.iterations == 0
    assert control.run.seed == 5 and control.run.data.seed == 0
    raw = specs[6]
    assert raw.baseline == "raw" and raw.tags["raypriv.stage"] == "baseline" and raw.params == {"baseline": "raw"}
    assert raw.run.seed == raw.run.data.seed == 5  # run_baselines draws clips and attackers with one seed
    # A baseline's digest covers its run config and method, not its name: what the cache looks up.
    assert len({spec_digest(raw), spec_digest(specs[8]), config_digest(raw.run)}) == 3
    assert spec_digest(specs[8].model_copy(update={"baseline": "raw", "name": "x"})) == spec_digest(raw)
    # Real data: no baselines (they need the synthetic set's masks).
    assert not [s for s in confirmation_specs(cfg, chosen, synthetic=False) if s.baseline]


def test_without_a_control_arm_the_stage_runs_the_configurations_and_baselines(tmp_path):
    doc = yaml.safe_load(open(SBU))
    doc["profiles"]["smoke"]["sweep"].update(confirm=1, control_arm=None)
    (tmp_path / "sbu.yaml").write_text(yaml.safe_dump(doc))
    cfg = load_sweep_config(tmp_path / "sbu.yaml", "smoke")
    specs = confirmation_specs(cfg, [("trial_0000", {"M": 2})], synthetic=True)
    assert cfg.control_run is None and [s.name for s in specs] == ["trial_0000_s0", "trial_0000_s1", "raw_s0", "raw_s1"]


def test_confirmation_settings_fail_before_anything_starts():
    assert load_sweep_config(SBU, "smoke").confirm_run is None  # smoke: screening only unless asked
    quick = load_sweep_config(SBU, "quick")
    assert (quick.sweep.confirm, quick.sweep.replicates) == (2, 3) and quick.confirm_run.data.preset == "laptop"
    with pytest.raises(ConfigError, match=r"sweep.control_arm: unknown arm 'nope'; declared arms: game, no_game"):
        load_sweep_config(SBU, "smoke", (), {"confirm": 1, "control_arm": "nope"})
    with pytest.raises(ConfigError, match=r"sweep.confirm_baselines: Value error, unknown baselines \['blur'\]"):
        load_sweep_config(SBU, "smoke", (), {"confirm": 1, "confirm_baselines": ["raw", "blur"]})


def test_a_resume_with_other_options_is_refused_naming_them():
    from raypriv.sweep.driver import SweepError, _check_same_params

    logged = {"trials": "3", "confirm": "2", "replicates": "2", "profile": "smoke"}
    _check_same_params(logged, {"trials": 3, "confirm": 2, "workers": 1}, "sweep", "s1")  # same, or new: fine
    with pytest.raises(SweepError, match=r"sweep s1 was started with --confirm 2 \(now 3\), --replicates 2 \(now 4\); "
                                         r"resume it with the same options"):
        _check_same_params(logged, {"trials": 3, "confirm": 3, "replicates": 4}, "sweep", "s1")


def test_the_live_tables_name_the_privacy_score_of_the_data():
    from raypriv.sweep.driver import privacy_column

    ucf = load_sweep_config("search_spaces/ucf101-vispr.yaml", "smoke")
    assert privacy_column(load_sweep_config(SBU, "smoke").run) == "A_B^N"
    assert privacy_column(ucf.run) == "cMAP^N" and privacy_column(None) == "A_B^N"
