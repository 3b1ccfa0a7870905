"""The two-fold evaluation protocol and the baselines, on tiny clips and tiny models (seconds)."""

from __future__ import annotations

import csv

import pytest
import torch
import torch.nn as nn

from raypriv.method.data import PRESETS, SPLITS, build_dataset
from raypriv.method.baselines import CSV_COLUMNS, _prepare, blank_masked, run_baselines
from raypriv.method.engine import accuracy
from raypriv.method.evaluation import evaluate_two_fold, select_attackers
from raypriv.method.models import BUDGETS, create_model

TINY = PRESETS["tiny"]
FAST = dict(video_attacker="c3d_tiny", fresh_target="c3d_tiny", epochs=2, patience=2)


@pytest.fixture(scope="module")
def splits():
    return {s: build_dataset("sbu", s, synthetic=True, preset=TINY, seed=0) for s in SPLITS}


@pytest.fixture(scope="module")
def data(splits):
    return {s: (ds.tensors()[0], ds.actions, ds.identities) for s, ds in splits.items()}


class Zeros(nn.Module):
    """A degrader that destroys everything: its output carries no information about the clip."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x) * self.scale


def test_an_attacker_of_a_budget_family_is_refused(data):
    with pytest.raises(ValueError, match=r"'smallcnn_tiny'.*'smallcnn'"):
        evaluate_two_fold(None, data, budget_families={"smallcnn"}, attackers=["plaincnn_d3_w32", "smallcnn_tiny"])
    with pytest.raises(ValueError, match=r"'c3d_tiny'.*'c3d'"):
        evaluate_two_fold(None, data, budget_families={"c3d"}, attackers=["smallcnn_tiny"], video_attacker="c3d_tiny")
    with pytest.raises(ValueError, match=r"unknown model families \['mobilenetv2'\]"):
        evaluate_two_fold(None, data, budget_families={"mobilenetv2"}, attackers=["smallcnn_tiny"])
    with pytest.raises(ValueError, match="unknown budget model"):
        evaluate_two_fold(None, data, budget_families=set(), attackers=["no_such_model"])


def test_select_attackers_avoids_budget_families_and_spreads_over_families():
    for budget in ({"mobilenet_v2"}, {"smallcnn", "mobilenet_v3"}, set()):
        names = select_attackers(budget)
        families = {BUDGETS.spec(n).family for n in names}
        assert len(names) == len(set(names)) == 6
        assert not families & budget
        assert len(families) >= 3
        assert any(BUDGETS.spec(n).family in {"smallcnn", "plaincnn"} for n in names)
        assert not any(BUDGETS.spec(n).tiny for n in names)
        assert select_attackers(budget) == names  # deterministic
        # The strongest frame attacker measured on a learned f_d (results/tradeoff.csv).
        assert "regnet_x_400mf" in names
    default = select_attackers({"mobilenet_v2"})
    assert any(BUDGETS.spec(n).family == "smallcnn" for n in default)  # a BatchNorm small CNN
    assert any("arch" in BUDGETS.spec(n).defaults for n in default)  # a torchvision architecture
    assert len({BUDGETS.spec(n).family for n in select_attackers(set(), n=4, min_families=4)}) == 4
    assert "smallcnn_tiny" in select_attackers(set(), include_tiny=True)
    everything_but_two = set(BUDGETS.families()) - {"smallcnn", "resnet"}
    with pytest.raises(ValueError, match="at least 3 families"):
        select_attackers(everything_but_two)


def test_result_fields_are_consistent(data):
    seen = []
    result = evaluate_two_fold(
        None, data, budget_families={"mobilenet_v2"}, attackers=["smallcnn_tiny", "plaincnn_d3_w32"],
        on_result=lambda name, acc: seen.append(name), **FAST,
    )
    assert set(result.privacy_per_attacker) == {"c3d_tiny", "smallcnn_tiny", "plaincnn_d3_w32"}
    assert result.privacy_acc == max(result.privacy_per_attacker.values())
    assert result.privacy_per_attacker[result.worst_attacker] == result.privacy_acc
    assert result.chance_target == 1 / 8 and result.chance_privacy == 1 / 13
    for acc in (result.target_acc, result.target_acc_fresh, *result.privacy_per_attacker.values()):
        assert 0.0 <= acc <= 1.0
    assert result.target_acc == result.target_acc_fresh  # no jointly trained f_T given
    assert seen == ["target_fresh", "c3d_tiny", "smallcnn_tiny", "plaincnn_d3_w32"]
    assert result.seconds > 0
    assert result.as_dict()["privacy_per_attacker"] == result.privacy_per_attacker
    assert set(result.fits) == set(seen)  # how every trained model ran; FAST caps fits at 2 epochs
    for fit in result.fits.values():
        assert 1 <= fit["best_epoch"] <= fit["epochs"] <= FAST["epochs"] and fit["seconds"] > 0


def test_parallel_workers_give_the_same_scores_as_one_process(data):
    degrader = nn.Conv3d(3, 1, 1)  # a frozen f_d whose outputs are cached once for every model
    kwargs = dict(budget_families={"mobilenet_v2"}, attackers=["smallcnn_tiny", "plaincnn_d3_w32"],
                  in_channels=1, train_frames=2, **FAST)
    serial = evaluate_two_fold(degrader, data, workers=1, **kwargs)
    seen = []
    parallel = evaluate_two_fold(degrader, data, workers=2, on_result=lambda name, acc: seen.append(name), **kwargs)
    assert parallel.privacy_per_attacker == serial.privacy_per_attacker
    assert list(parallel.privacy_per_attacker) == ["c3d_tiny", "smallcnn_tiny", "plaincnn_d3_w32"]
    assert parallel.target_acc_fresh == serial.target_acc_fresh
    assert sorted(seen) == sorted(["target_fresh", "c3d_tiny", "smallcnn_tiny", "plaincnn_d3_w32"])


def test_a_degrader_that_erases_everything_leaves_attackers_at_the_majority_rate(data):
    test_clips, test_actions, test_identities = data["test"]
    majority_identity = test_identities.bincount().max().item() / len(test_identities)
    majority_action = test_actions.bincount().max().item() / len(test_actions)
    attacker = dict(budget_families={"mobilenet_v2"}, attackers=["smallcnn_d2_w16"], video_attacker=None,
                    fresh_target="c3d_tiny")
    # The control: the same attacker on raw clips reads identity far above the majority rate, so
    # an evaluator that trained on raw clips by mistake would fail the assertions below.
    raw = evaluate_two_fold(None, data, epochs=30, patience=30, **attacker)
    assert raw.privacy_acc > 2 * majority_identity

    degrader = Zeros().train()
    torch.manual_seed(0)
    target_model = create_model("target", "c3d_tiny", num_classes=8)
    result = evaluate_two_fold(degrader, data, target_model=target_model, epochs=30, patience=4, **attacker)
    for name, acc in result.privacy_per_attacker.items():
        assert acc <= majority_identity + 1e-9, name
    assert result.target_acc_fresh <= majority_action + 1e-9
    expected = accuracy(target_model, test_clips, test_actions, transform=lambda x: torch.zeros_like(x))
    assert result.target_acc == expected
    assert degrader.training  # the degrader's mode is restored
    assert degrader.scale.grad is None  # and nothing flowed back into it


def test_accuracy_does_not_depend_on_the_inference_batch(data):
    # The CPU scores a few clips a forward (fast); the GPU 64: the same predictions either way.
    test_clips, _, test_identities = data["test"]
    torch.manual_seed(0)
    model = create_model("budget", "smallcnn_tiny", num_classes=13).train()
    model(test_clips[:8].float().div(255))  # move BatchNorm's running statistics off their init
    scores = {bs: accuracy(model, test_clips, test_identities, batch_size=bs) for bs in (None, 1, 3, 64)}
    assert len(set(scores.values())) == 1, scores
    with torch.no_grad():  # accuracy() left the model in eval mode
        predicted = torch.cat([model(test_clips[i : i + 1].float().div(255)).argmax(1) for i in range(len(test_clips))])
    assert scores[None] == (predicted == test_identities).sum().item() / len(test_clips)


def test_degraded_channels_must_match_in_channels(data):
    with pytest.raises(ValueError, match="in_channels=1"):
        evaluate_two_fold(None, data, budget_families=set(), attackers=["smallcnn_tiny"], in_channels=1, **FAST)


def test_crops_blank_exactly_the_masked_pixels(splits):
    clips, masks = splits["test"].tensors()
    for method, channel in (("face_crop", 0), ("body_crop", 1)):
        out, transform, channels = _prepare(method, clips, masks)
        assert transform is None and channels == 3 and out.dtype == torch.uint8 and out.shape == clips.shape
        inside = (masks[:, channel] > 127).unsqueeze(1).expand_as(clips)
        assert inside.any()
        assert (out[inside] == 0).all()
        assert torch.equal(out[~inside], clips[~inside])
    face, body = (masks[:, i] > 127 for i in (0, 1))
    assert (face & ~body).sum() < face.sum() * 0.1  # the face is (nearly all) part of the body
    sil, _, channels = _prepare("silhouette", clips, masks)
    assert channels == 1 and sil.shape == (clips.shape[0], 1, *clips.shape[2:])
    assert set(sil.unique().tolist()) == {0, 255}
    assert torch.equal(sil[:, 0] == 255, body)
    tiny = torch.full((1, 3, 1, 2, 2), 200, dtype=torch.uint8)
    mask = torch.tensor([[[[0, 127], [128, 255]]]], dtype=torch.uint8)
    assert blank_masked(tiny, mask)[0, :, 0].flatten(1).tolist() == [[200, 200, 0, 0]] * 3


def test_run_baselines_writes_the_csv_and_the_json(tmp_path):
    rows_seen = []
    rows = run_baselines(
        TINY, methods=["downsample_s4", "silhouette"], attackers=["smallcnn_tiny"], video_attacker=None,
        fresh_target="c3d_tiny", epochs=2, patience=2, out_dir=tmp_path, on_row=rows_seen.append,
    )
    assert [r.method for r in rows] == ["downsample_s4", "silhouette"] and rows_seen == rows
    with open(tmp_path / "baselines.csv", newline="") as f:
        table = list(csv.reader(f))
    assert tuple(table[0]) == CSV_COLUMNS
    assert table[0][:4] == ["method", "target_acc", "target_acc_fresh", "privacy_acc"]
    assert [line[0] for line in table[1:]] == ["downsample_s4", "silhouette"]
    assert all(line[4] == "smallcnn_tiny" for line in table[1:])
    import json

    per_method = json.loads((tmp_path / "baselines.json").read_text())
    assert [m["method"] for m in per_method] == ["downsample_s4", "silhouette"]
    assert all(set(m["privacy_per_attacker"]) == {"smallcnn_tiny"} for m in per_method)
    with pytest.raises(ValueError, match="unknown baseline"):
        run_baselines(TINY, methods=["blur"])


def test_baselines_draw_the_clips_with_data_seed_and_the_models_with_seed(monkeypatch):
    import raypriv.method.baselines as baselines

    drawn, evaluated = [], []
    real = baselines.build_dataset
    monkeypatch.setattr(baselines, "build_dataset", lambda *a, **kw: drawn.append(kw["seed"]) or real(*a, **kw))
    monkeypatch.setattr(baselines, "evaluate_two_fold", lambda *a, **kw: evaluated.append(kw["seed"]) or {})
    run_baselines(TINY, seed=2, data_seed=5, methods=["raw"])
    assert set(drawn) == {5} and evaluated == [2]
    drawn.clear()
    run_baselines(TINY, seed=3, methods=["raw"])  # one seed for both unless data_seed is given
    assert set(drawn) == {3}


@pytest.mark.parametrize(("min_epochs", "stopped"), [(0, 3), (6, 6), (20, 10)])
def test_early_stopping_waits_for_min_epochs(monkeypatch, min_epochs, stopped):
    import raypriv.method.engine as engine

    scores = iter([0.5] + [0.1] * 20)  # best at epoch 1, never better: patience 2 ends it at epoch 3
    monkeypatch.setattr(engine, "score", lambda *a, **kw: next(scores))
    clips, labels = torch.zeros(8, 1, 1, 2, 2, dtype=torch.uint8), torch.arange(8) % 2
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    fit = engine.fit_classifier(model, (clips, labels), (clips, labels), epochs=10, patience=2, min_epochs=min_epochs)
    assert (fit.epochs, fit.best_epoch) == (stopped, 1)


def test_the_evaluation_fits_every_model_with_min_epochs(monkeypatch, data):
    import raypriv.method.evaluation as evaluation

    seen = []
    real = evaluation.fit_classifier
    monkeypatch.setattr(evaluation, "fit_classifier", lambda *a, **kw: seen.append(kw["min_epochs"]) or real(*a, **kw))
    evaluate_two_fold(None, data, budget_families=set(), attackers=["smallcnn_tiny"], min_epochs=2, workers=1, **FAST)
    assert seen == [2, 2, 2]  # the fresh f_T, the video attacker, the frame attacker


def test_parallel_workers_start_the_slowest_models_first():
    from raypriv.method.evaluation import _expected_cost, _Job

    jobs = [_Job("target", "c3d_tiny", 0, 8, "target_fresh"), _Job("budget", "smallcnn_tiny", 1, 13, "smallcnn_tiny"),
            _Job("budget", "shufflenet_v2_x0_5", 1, 13, "shufflenet_v2_x0_5"), _Job("target", "c3d_lite", 1, 13, "c3d_lite")]
    order = [job.key for job in sorted(jobs, key=_expected_cost, reverse=True)]
    assert order == ["shufflenet_v2_x0_5", "target_fresh", "c3d_lite", "smallcnn_tiny"]
