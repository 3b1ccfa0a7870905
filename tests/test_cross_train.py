"""The paper's second setting end to end on the smoke profile: UCF-101-like videos (the action) and
VISPR-like images (multi-label privacy attributes) share one f_d, in the one loop, judged by cMAP."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner

import raypriv.method.adversarial as loop
from raypriv.cli import cli
from raypriv.method.config import load_run_config
from raypriv.method.data import load_run_data
from raypriv.method.run import METRIC_KEYS
from raypriv.method.tasks import MULTILABEL

SPACE = "search_spaces/ucf101-vispr.yaml"
TRAIN = ("train", "ucf101-vispr", "--synthetic", "--profile", "smoke")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = CliRunner().invoke(cli, [*TRAIN, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "cMAP^N" in result.output and "privacy images train 48" in result.output
    return out


@pytest.fixture(scope="module")
def data():
    return load_run_data(load_run_config(SPACE, "smoke").data, synthetic=True)


def _config(*overrides: str):
    return load_run_config(SPACE, "smoke", overrides)


def test_metrics_json_reports_the_cmap_of_the_attackers_and_its_chance(run_dir, data):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(METRIC_KEYS) <= set(metrics)
    assert metrics["privacy_metric"] == "cmap"
    assert 0.0 <= metrics["privacy_cmap"] <= 1.0 and 0.0 <= metrics["target_acc"] <= 1.0
    assert metrics["privacy_acc"] == metrics["privacy_cmap"] == max(metrics["privacy_per_attacker"].values())
    assert set(metrics["privacy_per_attacker"]) == {"plaincnn_d3_w32"} == set(metrics["attackers"])  # no video attacker
    assert math.isclose(metrics["chance_privacy"], MULTILABEL.chance(data.privacy.labels("test"), 8))
    assert math.isclose(metrics["chance_target"], 1 / 12)
    assert len(metrics["history"]) == 4
    assert all(row["privacy_floor"] == pytest.approx(-math.log(2)) for row in metrics["history"])
    for name in ("degrader.pt2", "weights.safetensors", "config.yaml", "samples.png"):
        assert (run_dir / name).stat().st_size > 0, name


def test_the_two_pipelines_draw_their_own_data(data):
    assert not data.shared and data.privacy.task is MULTILABEL
    assert data.target.clips("train").shape[2] == 8 and data.privacy.clips("train").shape[2] == 1
    game = loop.start_game(_config(), data, device=torch.device("cpu"))
    assert game.privacy_batches is not game.batches
    target_idx, privacy_idx = game.next_batches()
    assert int(target_idx.max()) < 24 and len(privacy_idx) == 8
    assert game.budgets[0](game.clip_batch(privacy_idx, pipeline="privacy")).shape == (8, 8)  # 8 attributes


def test_step_a_is_lt_on_videos_plus_the_multilabel_privacy_term_on_images(data, monkeypatch):
    seen = []
    original = loop.privacy_loss

    def spy(logits, kind, *args, **kwargs):
        seen.append(([tuple(lg.shape) for lg in logits], kind))
        return original(logits, kind, *args, **kwargs)

    monkeypatch.setattr(loop, "privacy_loss", spy)
    trained = loop.train_adversarial(_config("adversarial.iterations=2"), data, device=torch.device("cpu"))
    assert seen == [([(8, 8), (8, 8)], "neg_binary_entropy")] * 2  # M = 2 budget models, one image batch each
    assert all(0.0 <= row["budget_val_acc"] <= 1.0 for row in trained.history)  # the budget models' cMAP


def test_the_prior_of_prior_binary_kl_is_the_training_prevalence_of_the_attributes(data, monkeypatch):
    priors = []
    original = loop.privacy_loss

    def spy(logits, kind, *args, prior=None, **kwargs):
        priors.append(prior)
        return original(logits, kind, *args, prior=prior, **kwargs)

    monkeypatch.setattr(loop, "privacy_loss", spy)
    loop.train_adversarial(_config("adversarial.iterations=1", "adversarial.privacy_loss=prior_binary_kl"), data,
                           device=torch.device("cpu"))
    assert len(priors) == 1 and torch.allclose(priors[0], data.privacy.labels("train").float().mean(0))


def test_a_resumed_cross_dataset_run_ends_bit_identical(data, tmp_path):
    cfg = _config("adversarial.iterations=4", "adversarial.restart_every=3", "adversarial.checkpoint_every=2")
    states = []
    whole = loop.train_adversarial(cfg, data, device=torch.device("cpu"), on_checkpoint=states.append)
    torch.save(states[1], tmp_path / "state.pt")
    resumed = loop.train_adversarial(cfg, data, device=torch.device("cpu"),
                                     resume=torch.load(tmp_path / "state.pt", weights_only=True))
    for key, value in whole.degrader.state_dict().items():
        assert torch.equal(value, resumed.degrader.state_dict()[key]), key
    assert resumed.history == whole.history


@pytest.mark.parametrize("override, message", [
    ("adversarial.privacy_loss=neg_entropy", "adversarial.privacy_loss: 'neg_entropy' does not fit the multilabel"),
    ("evaluation.video_attacker=c3d_tiny", "evaluation.video_attacker: 'c3d_tiny': the privacy set vispr is images"),
    ("data.privacy_dataset=null", "dataset 'ucf101' has no privacy labels"),
])
def test_settings_that_do_not_fit_the_data_are_refused_before_training(override, message, tmp_path):
    result = CliRunner().invoke(cli, [*TRAIN, "--set", override, "--out", str(tmp_path / "run")])
    assert result.exit_code != 0 and message in result.output, result.output
    assert not (tmp_path / "run").exists()


def test_evaluate_reads_the_exported_degrader(run_dir):
    result = CliRunner().invoke(cli, ["evaluate", "ucf101-vispr", "--synthetic", "--profile", "smoke",
                                      "--degrader", str(run_dir / "degrader.pt2")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert report["privacy_metric"] == "cmap" and 0.0 <= report["privacy_cmap"] <= 1.0


def test_baselines_are_raw_and_downsampling(tmp_path):
    result = CliRunner().invoke(cli, ["baselines", "ucf101-vispr", "--synthetic", "--profile", "smoke",
                                      "--methods", "raw,downsample_s4", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "baselines.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["raw", "downsample_s4"]
    assert "raw             A_T" in result.output and "cMAP^N" in result.output
    refused = CliRunner().invoke(cli, ["baselines", "ucf101-vispr", "--synthetic", "--profile", "smoke",
                                       "--methods", "face_crop", "--out", str(tmp_path / "x")])
    assert refused.exit_code != 0 and "need the synthetic SBU set's face and body masks" in refused.output
