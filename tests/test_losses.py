"""The losses of Algorithm 1 on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from raypriv.method.losses import negative_entropy, privacy_loss, uniform_cross_entropy


def test_negative_entropy_hand_computed():
    uniform = torch.zeros(1, 4)
    assert negative_entropy(uniform).item() == pytest.approx(-math.log(4))
    # p = (0.5, 0.5, 0, ...) in the limit: entropy log 2.
    two_way = torch.tensor([[0.0, 0.0, -1e4, -1e4]])
    assert negative_entropy(two_way).item() == pytest.approx(-math.log(2), abs=1e-6)
    confident = torch.tensor([[30.0, 0.0, 0.0, 0.0]])
    assert negative_entropy(confident).item() == pytest.approx(0.0, abs=1e-9)


def test_uniform_cross_entropy_is_smallest_at_the_uniform_prediction():
    assert uniform_cross_entropy(torch.zeros(1, 13)).item() == pytest.approx(math.log(13))
    assert uniform_cross_entropy(torch.tensor([[3.0] + [0.0] * 12])).item() > math.log(13)


@pytest.mark.parametrize("kind", ["neg_entropy", "uniform_ce"])
def test_max_picks_the_most_confident_budget_model(kind):
    unsure = torch.zeros(4, 13)  # uniform: entropy log 13
    fairly_sure = torch.zeros(4, 13)
    fairly_sure[:, 0] = 2.0
    very_sure = torch.zeros(4, 13)
    very_sure[:, 3] = 6.0
    loss, index = privacy_loss([unsure, very_sure, fairly_sure], kind)  # every clip: the same model
    assert index == 1
    expected = negative_entropy(very_sure) if kind == "neg_entropy" else uniform_cross_entropy(very_sure)
    assert loss.item() == pytest.approx(expected.mean().item())


def test_the_ensemble_max_is_per_sample_by_default_and_per_batch_on_request():
    # Two models, two clips: model A is sure about clip 0 only, model B about clip 1 only.
    a = torch.tensor([[9.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    b = torch.tensor([[0.0, 0.0, 0.0], [0.0, 9.0, 0.0]])
    ne = lambda row: negative_entropy(row[None]).item()  # noqa: E731
    per_sample, _ = privacy_loss([a, b], "neg_entropy")
    # per clip, the surer model: A on clip 0, B on clip 1 (both near 0); a batch max of means would
    # pay for one model's unsure clip
    assert per_sample.item() == pytest.approx((ne(a[0]) + ne(b[1])) / 2)
    per_batch, index = privacy_loss([a, b], "neg_entropy", ensemble="batch")
    assert per_batch.item() == pytest.approx(max((ne(a[0]) + ne(a[1])) / 2, (ne(b[0]) + ne(b[1])) / 2))
    assert per_sample.item() > per_batch.item()  # the per-sample max is at least the batch one
    chosen_by_caller = privacy_loss([a, b], "neg_entropy", ensemble="batch", choose=lambda means: 0)[1]
    assert chosen_by_caller == 0  # a data-parallel caller decides from the means over its ranks
    with pytest.raises(ValueError, match="unknown ensemble max 'mean'"):
        privacy_loss([a, b], ensemble="mean")


def test_privacy_loss_gradient_flows_only_to_the_chosen_model():
    a = torch.zeros(2, 5, requires_grad=True)
    b = torch.tensor([[4.0, 0, 0, 0, 0], [0, 4.0, 0, 0, 0]], requires_grad=True)
    loss, index = privacy_loss([a, b])
    loss.backward()
    assert index == 1
    assert a.grad is None or torch.count_nonzero(a.grad) == 0
    assert torch.count_nonzero(b.grad) > 0


def test_unknown_privacy_loss_is_named():
    with pytest.raises(ValueError, match="unknown privacy loss 'kl'.*neg_entropy, uniform_ce"):
        privacy_loss([torch.zeros(1, 3)], "kl")
