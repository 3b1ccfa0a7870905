"""Algorithm 1 on test-sized data (the smoke profile): what each phase must do."""

from __future__ import annotations

import pytest
import torch

import raypriv.method.adversarial as loop
from raypriv.method.adversarial import train_adversarial
from raypriv.method.config import BudgetConfig, load_run_config
from raypriv.method.models import budget_model_names as select_budget_models
from raypriv.method.data import SPLITS, build_dataset

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
    original = loop.budget_phase

    def spy(game, *args, **kwargs):
        seen.append([_state(b) for b in game.budgets])  # weights as the phase starts
        return original(game, *args, **kwargs)

    monkeypatch.setattr(loop, "budget_phase", spy)
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


@pytest.mark.parametrize("of, threshold", [("pretrained", 1.0), ("absolute", 0.5)])
def test_the_target_phase_runs_only_while_f_t_is_at_or_below_threshold_1(data, monkeypatch, of, threshold):
    """threshold₁ = 0.5 either way: absolute, or 1.0 x the pre-trained validation accuracy (set to 0.5).
    f_T's accuracy is checked at iterations 1, 2 and 4 (every 2nd); in between the last check stands."""
    pretrain = loop.pretrain_target

    def pretrained_at_half(game):
        pretrain(game)
        game.out.pretrain["target_val_acc"] = 0.5

    checks = iter([0.55, 0.45, 0.6])
    monkeypatch.setattr(loop, "pretrain_target", pretrained_at_half)
    monkeypatch.setattr(loop, "target_val_acc", lambda game: next(checks))
    cfg = _config("adversarial.iterations=5", "adversarial.restart_every=0", "adversarial.target_max_steps=3",
                  f"adversarial.target_threshold={threshold}", f"adversarial.target_threshold_of={of}",
                  "adversarial.target_check_every=2")
    result = _run(cfg, data)
    assert [row["target_val_acc"] for row in result.history] == [0.55, 0.45, 0.45, 0.6, 0.6]
    assert [row["target_steps"] for row in result.history] == [0, 3, 3, 0, 0]


def test_a_nan_loss_names_the_phase_and_iteration(data, monkeypatch):
    monkeypatch.setattr(loop, "privacy_loss", lambda *args, **kwargs: (torch.tensor(float("nan")), 0))
    with pytest.raises(FloatingPointError, match="adversarial update of iteration 1"):
        _run(_config(), data)


def test_budget_sampling_policies():
    cycled = select_budget_models(BudgetConfig(count=5, policy="cycle", models=("smallcnn_d2_w16", "mnasnet0_5")))
    assert cycled == ["smallcnn_d2_w16", "mnasnet0_5"] * 2 + ["smallcnn_d2_w16"]
    sampled = select_budget_models(BudgetConfig(count=4, policy="sample", families=("smallcnn", "mobilenet_v2"), seed=3))
    assert len(sampled) == 4 and len(set(sampled)) == 4  # no repeats before the pool is used up
    assert sampled == select_budget_models(BudgetConfig(count=4, policy="sample", families=("smallcnn", "mobilenet_v2"), seed=3))
    assert all(n.startswith(("smallcnn", "mobilenet_v2")) and n != "smallcnn_tiny" for n in sampled)


def test_a_run_resumed_from_a_checkpoint_ends_bit_identical_to_an_uninterrupted_one(data, tmp_path):
    cfg = _config("adversarial.iterations=4", "adversarial.restart_every=3", "adversarial.checkpoint_every=2")
    states = []
    whole = _run(cfg, data, on_checkpoint=states.append)
    assert [s["iteration"] for s in states] == [0, 2]  # after pre-training, then every 2 (not after the last)
    # through a file, as a Ray Train checkpoint holds it: tensors and plain values only
    torch.save(states[1], tmp_path / "loop_state.pt")
    state = torch.load(tmp_path / "loop_state.pt", weights_only=True)
    resumed = _run(cfg, data, resume=state)
    for key, value in _state(whole.degrader).items():
        assert torch.equal(value, resumed.degrader.state_dict()[key]), key
    for a, b in zip(whole.budgets, resumed.budgets):  # restarted at iteration 3, after the checkpoint
        assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert resumed.history == whole.history and resumed.steps == whole.steps
    other = _config("adversarial.iterations=4", "budget.count=1")
    with pytest.raises(ValueError, match="checkpoint's budget models"):
        _run(other, data, resume=state)
