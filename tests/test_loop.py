"""Algorithm 1 on test-sized data (the smoke profile): what each phase must do."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import raypriv.adversarial.loop as loop
from raypriv.adversarial.loop import select_budget_models, train_adversarial
from raypriv.config import BudgetConfig, load_run_config
from raypriv.data import SPLITS, build_dataset

SPACE = "search_spaces/sbu.yaml"


@pytest.fixture(scope="module")
def data():
    out = {}
    for split in SPLITS:
        ds = build_dataset("sbu", split, synthetic=True, preset="tiny")
        out[split] = (ds.tensors()[0], ds.actions, ds.identities)
    return out


def _config(*overrides: str):
    return load_run_config(SPACE, "smoke", overrides)


def _run(cfg, data, **kwargs):
    return train_adversarial(cfg, data, num_actions=8, num_identities=13, device=torch.device("cpu"), **kwargs)


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_one_adversarial_iteration_changes_the_degrader(data):
    cfg = _config("adversarial.iterations=0")
    before = _state(_run(cfg, data).degrader)
    after = _state(_run(_config("adversarial.iterations=1", "adversarial.target_max_steps=0"), data).degrader)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, "the adversarial update left f_d unchanged"


def test_runs_are_deterministic_on_cpu(data):
    one = _run(_config(), data)
    two = _run(_config(), data)
    for key, value in _state(one.degrader).items():
        assert torch.equal(value, two.degrader.state_dict()[key]), key
    assert one.history == two.history


def test_restart_reinitialises_every_budget_model(data, monkeypatch):
    seen = []
    original = loop._train_budgets

    def spy(budgets, *args, **kwargs):
        seen.append([_state(b) for b in budgets])  # weights as the phase starts
        return original(budgets, *args, **kwargs)

    monkeypatch.setattr(loop, "_train_budgets", spy)
    result = _run(_config("adversarial.iterations=2", "adversarial.restart_every=2"), data)
    assert [row["restarted"] for row in result.history] == [0.0, 1.0]
    # Before iteration 2's phase the models were restarted: no tensor equals its iteration-1 value
    # (BatchNorm's num_batches_tracked aside, which restarts at 0 as well).
    for old, new in zip(*seen):
        for key in old:
            if old[key].is_floating_point() and old[key].numel() > 1 and "running" not in key:
                assert not torch.equal(old[key], new[key]), key


def test_inner_loops_stop_at_their_caps(data):
    cfg = _config(
        "adversarial.iterations=3", "adversarial.restart_every=0", "adversarial.target_threshold=1.0",
        "adversarial.budget_threshold=1.0", "adversarial.target_max_steps=3", "adversarial.budget_max_steps=2",
    )
    result = _run(cfg, data)
    # Thresholds of 100 % are never exceeded, so every inner loop runs exactly to its cap.
    assert [row["target_steps"] for row in result.history] == [3, 3, 3]
    assert [row["budget_steps"] for row in result.history] == [2, 2, 2]
    assert result.steps["target_steps"] == 9 and result.steps["budget_steps"] == 6


def test_the_final_target_phase_runs_to_threshold_or_its_cap(data, monkeypatch):
    base = ("adversarial.iterations=1", "adversarial.target_max_steps=2")
    capped = _run(_config(*base, "adversarial.target_threshold=1.0", "adversarial.final_target_max_steps=5"), data)
    assert capped.steps["final_target_steps"] == 5  # 100 % is never exceeded: 2 + 2 + 1 steps
    # the game's one check reads 95 % (no L_T steps in iteration 1); the final phase reads 50 %,
    # 50 %, then 95 %: two rounds of target_max_steps, then it stops below its cap of 10
    readings, original = [0.95, 0.5, 0.5, 0.95], loop.accuracy
    monkeypatch.setattr(loop, "accuracy", lambda *a, **k: readings.pop(0) if readings else original(*a, **k))
    stopped = _run(_config(*base, "adversarial.final_target_max_steps=10"), data)
    assert stopped.history[0]["target_steps"] == 0
    assert stopped.steps["final_target_steps"] == 4 and not readings
    assert "final_target_steps" not in _run(_config(*base), data).steps  # off by default


def test_a_nan_loss_names_the_phase_and_iteration(data, monkeypatch):
    monkeypatch.setattr(loop, "privacy_loss", lambda logits, kind: (torch.tensor(float("nan")), 0))
    with pytest.raises(FloatingPointError, match="adversarial update of iteration 1"):
        _run(_config(), data)


def test_budget_sampling_policies():
    cycled = select_budget_models(BudgetConfig(count=5, policy="cycle", models=("smallcnn_d2_w16", "mnasnet0_5")))
    assert cycled == ["smallcnn_d2_w16", "mnasnet0_5"] * 2 + ["smallcnn_d2_w16"]
    sampled = select_budget_models(BudgetConfig(count=4, policy="sample", families=("smallcnn", "mobilenet_v2"), seed=3))
    assert len(sampled) == 4 and len(set(sampled)) == 4  # no repeats before the pool is used up
    assert sampled == select_budget_models(BudgetConfig(count=4, policy="sample", families=("smallcnn", "mobilenet_v2"), seed=3))
    assert all(n.startswith(("smallcnn", "mobilenet_v2")) and n != "smallcnn_tiny" for n in sampled)


def _forcing_target_accuracies(monkeypatch, accuracies):
    """Pre-training fits return these validation accuracies in turn (then the real ones)."""
    forced, original = list(accuracies), loop.fit_classifier

    def fit(*args, **kwargs):
        result = original(*args, **kwargs)
        return dataclasses.replace(result, val_accuracy=forced.pop(0)) if forced else result

    monkeypatch.setattr(loop, "fit_classifier", fit)


def test_target_candidates_keep_the_best_pretraining(data, monkeypatch):
    overrides = ("adversarial.iterations=2", "pretrain.target_epochs=2", "pretrain.patience=2")
    single = _run(_config(*overrides), data)
    _forcing_target_accuracies(monkeypatch, [0.6, 0.2, 0.4])
    first_wins = _run(_config(*overrides, "pretrain.target_candidates=3"), data)
    # candidate 0 is the single pre-training, and the other candidates leave the run's random
    # stream alone: the whole run is the same
    assert first_wins.steps["target_pretrain_candidate"] == 0
    for key, value in _state(single.degrader).items():
        assert torch.equal(value, first_wins.degrader.state_dict()[key]), key
    assert single.history == first_wins.history
    assert {k: first_wins.pretrain[f"target_val_acc.{k}"] for k in range(3)} == {0: 0.6, 1: 0.2, 2: 0.4}

    _forcing_target_accuracies(monkeypatch, [0.2, 0.6, 0.4])
    second_wins = _run(_config(*overrides, "pretrain.target_candidates=3", "adversarial.iterations=0",
                               "pretrain.budget_epochs=0"), data)
    assert second_wins.steps["target_pretrain_candidate"] == 1
    assert second_wins.pretrain["target_val_acc"] == 0.6
    assert second_wins.steps["target_pretrain_epochs"] >= 3  # all three candidates trained
    single_pretrained = _run(_config(*overrides, "adversarial.iterations=0", "pretrain.budget_epochs=0"), data)
    differs = [k for k, v in _state(single_pretrained.degrader).items()
               if not torch.equal(v, second_wins.degrader.state_dict()[k])]
    assert differs, "the winning candidate's f_d was not kept"
