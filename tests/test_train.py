"""`raypriv train` end to end on the smoke profile: every file and every metric is there."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from click.testing import CliRunner

from raypriv.cli import cli
from raypriv.method.run import METRIC_KEYS


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = CliRunner().invoke(
        cli, ["train", "sbu", "--synthetic", "--profile", "smoke", "--set", "gamma=1.5", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "A_B^N" in result.output
    return out


def test_train_writes_every_file(run_dir):
    for name in ("degrader.pt2", "weights.safetensors", "config.yaml", "metrics.json", "samples.png"):
        assert (run_dir / name).stat().st_size > 0, name
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["adversarial"]["gamma"] == 1.5  # the resolved config, --set included


def test_metrics_json_has_every_key_with_sane_values(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(METRIC_KEYS) <= set(metrics)
    for key in ("target_acc", "target_acc_fresh", "privacy_acc"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["privacy_acc"] == max(metrics["privacy_per_attacker"].values())
    assert metrics["privacy_per_attacker"][metrics["worst_attacker"]] == metrics["privacy_acc"]
    assert math.isclose(metrics["chance_target"], 1 / 8) and math.isclose(metrics["chance_privacy"], 1 / 13)
    assert metrics["steps"]["adversarial_steps"] == 4  # smoke: 4 iterations
    # smoke: 2 budget models, each pre-trained for its 1 epoch; accuracies are validation fractions
    assert [metrics["steps"][f"budget_pretrain_epochs.{i}"] for i in range(2)] == [1, 1]
    assert set(metrics["pretrain"]) == {"target_val_acc", "budget_val_acc.0", "budget_val_acc.1"}
    assert all(0.0 <= acc <= 1.0 for acc in metrics["pretrain"].values())
    assert metrics["degrader_params"] > 0 and metrics["target_params"] > 0
    assert set(metrics["attackers"]) == set(metrics["privacy_per_attacker"])
    assert set(metrics["fits"]) == set(metrics["attackers"]) | {"target_fresh"}
    assert all(1 <= f["best_epoch"] <= f["epochs"] <= 1 for f in metrics["fits"].values())  # smoke: 1 epoch
    assert len(metrics["history"]) == 4


def test_bad_set_key_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(
        cli, ["train", "sbu", "--synthetic", "--profile", "smoke", "--set", "budget.cout=3", "--out", str(tmp_path)]
    )
    assert result.exit_code != 0
    assert "budget.cout: Extra inputs are not permitted" in result.output
    assert list(tmp_path.iterdir()) == []  # nothing written for a config that never ran


def test_evaluate_reads_the_exported_degrader_and_avoids_its_budget_families(run_dir):
    result = CliRunner().invoke(
        cli, ["evaluate", "sbu", "--synthetic", "--profile", "smoke", "--degrader", str(run_dir / "degrader.pt2")]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert set(report["privacy_per_attacker"]) == {"plaincnn_d3_w32", "c3d_tiny"}
    # The smoke run trained against smallcnn budget models: a smallcnn attacker is refused.
    refused = CliRunner().invoke(cli, [
        "evaluate", "sbu", "--synthetic", "--profile", "smoke", "--degrader", str(run_dir / "degrader.pt2"),
        "--set", "evaluation.attackers=[smallcnn_d2_w16]",
    ])
    assert refused.exit_code != 0 and "smallcnn_d2_w16" in refused.output and "smallcnn" in refused.output


def test_baselines_write_the_csv_and_the_plot(tmp_path):
    result = CliRunner().invoke(cli, ["baselines", "sbu", "--synthetic", "--profile", "smoke", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "baselines.csv").read_text().splitlines()
    assert lines[0].startswith("method,target_acc,target_acc_fresh,privacy_acc")
    methods = [line.split(",")[0] for line in lines[1:]]
    assert {"raw", "downsample_s2", "downsample_s4", "downsample_s8", "downsample_s16", "face_crop", "body_crop"} <= set(methods)
    assert (tmp_path / "baselines.png").stat().st_size > 0
    assert "raw             A_T" in result.output and "(worst: " in result.output


def test_missing_real_data_is_a_clear_error_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("RAYPRIV_SBU_ROOT", raising=False)
    out = tmp_path / "run"
    missing = tmp_path / "no-sbu-here"
    result = CliRunner().invoke(
        cli, ["train", "sbu", "--root", str(missing), "--profile", "smoke", "--out", str(out)]
    )
    assert result.exit_code != 0
    assert str(missing) in result.output and "--synthetic" in result.output
    assert not out.exists()


def test_a_diverging_run_names_the_phase_and_writes_nothing(tmp_path):
    from raypriv.method.config import load_run_config
    from raypriv.method.run import run_training

    cfg = load_run_config("search_spaces/sbu.yaml", "smoke", ("pretrain.lr=1e30",))
    with pytest.raises(FloatingPointError, match="loss became nan in degrader reconstruction step 1"):
        run_training(cfg, tmp_path / "out", synthetic=True, log=lambda _: None)
    assert not (tmp_path / "out").exists()


def test_an_export_failure_stops_the_run_before_the_evaluation(tmp_path, monkeypatch):
    import raypriv.method.run as train
    from raypriv.method.config import load_run_config

    def broken_export(*args, **kwargs):
        raise RuntimeError("export refused")

    def evaluation_ran(*args, **kwargs):
        raise AssertionError("the evaluation ran although f_d could not be exported")

    monkeypatch.setattr(train, "export_degrader", broken_export)
    monkeypatch.setattr(train, "evaluate_two_fold", evaluation_ran)
    cfg = load_run_config("search_spaces/sbu.yaml", "smoke")
    with pytest.raises(RuntimeError, match="export refused"):
        train.run_training(cfg, tmp_path / "out", synthetic=True, log=lambda _: None)
    assert not (tmp_path / "out").exists()
