"""The privacy task abstraction (multi-class vs multi-label) and the multi-label privacy loss, on
hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import average_precision_score

from raypriv.method.losses import LOSSES, negative_binary_entropy, prior_binary_kl, privacy_floor, privacy_loss
from raypriv.method.tasks import MULTICLASS, MULTILABEL, class_mean_average_precision, mean_prevalence, task_of


def test_the_labels_choose_the_task():
    assert task_of(torch.tensor([0, 3, 1])) is MULTICLASS
    assert task_of(torch.tensor([[1.0, 0.0], [0.0, 1.0]])) is MULTILABEL
    with pytest.raises(ValueError, match="neither class indices"):
        task_of(torch.zeros(2, 3, 4))
    assert MULTICLASS.metric == "accuracy" and MULTILABEL.metric == "cmap"
    assert "neg_binary_entropy" in MULTILABEL.privacy_losses and "neg_entropy" in MULTICLASS.privacy_losses
    assert set(MULTICLASS.privacy_losses + MULTILABEL.privacy_losses) == set(LOSSES)


def test_cmap_averages_the_average_precision_of_the_attributes_present():
    labels = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=torch.float32)
    logits = torch.tensor([[2.0, -1.0, 0.3], [0.5, 1.0, 0.1], [-1.0, 0.2, 0.4], [0.0, -2.0, 0.9]])
    # attribute 2 has no positive: left out, as sklearn would warn and score it 0
    expected = (average_precision_score([1, 0, 1, 0], [2.0, 0.5, -1.0, 0.0])
                + average_precision_score([0, 1, 1, 0], [-1.0, 1.0, 0.2, -2.0])) / 2
    assert class_mean_average_precision(logits, labels) == pytest.approx(expected)
    assert MULTILABEL.score(labels * 10 - 5, labels) == pytest.approx(1.0)  # a perfect ranking
    assert math.isnan(class_mean_average_precision(logits, torch.zeros(4, 3)))


def test_chance_levels():
    labels = torch.tensor([[1, 0, 0], [0, 0, 0], [1, 1, 0], [0, 0, 0]], dtype=torch.float32)
    assert mean_prevalence(labels) == pytest.approx((0.5 + 0.25) / 2)  # attribute 2 is absent
    assert MULTILABEL.chance(labels, 3) == pytest.approx(0.375)
    assert MULTICLASS.chance(torch.tensor([0, 1]), 13) == pytest.approx(1 / 13)
    assert MULTILABEL.num_classes(labels) == 3 and MULTICLASS.num_classes(torch.tensor([0, 4, 2])) == 5


def test_multilabel_loss_is_binary_cross_entropy():
    logits, labels = torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 0.0]])
    expected = (math.log(2) + math.log(1 + math.exp(2.0))) / 2
    assert MULTILABEL.loss(logits, labels).item() == pytest.approx(expected)


def test_negative_binary_entropy_hand_computed():
    assert negative_binary_entropy(torch.zeros(2, 5)).tolist() == pytest.approx([-math.log(2)] * 2)
    assert negative_binary_entropy(torch.tensor([[40.0, -40.0]])).item() == pytest.approx(0.0, abs=1e-9)
    p = 1 / (1 + math.exp(-1.0))
    one = p * math.log(p) + (1 - p) * math.log(1 - p)
    assert negative_binary_entropy(torch.tensor([[1.0, 0.0]])).item() == pytest.approx((one - math.log(2)) / 2)
    assert privacy_floor("neg_binary_entropy", 17) == pytest.approx(-math.log(2))
    assert privacy_floor("neg_entropy", 13) == pytest.approx(-math.log(13))


def test_the_ensemble_max_picks_the_most_confident_multilabel_model_per_sample():
    unsure = torch.zeros(2, 4)
    sure_of_first = torch.tensor([[8.0, -8.0, 8.0, -8.0], [0.0, 0.0, 0.0, 0.0]])
    sure_of_second = torch.tensor([[0.0, 0.0, 0.0, 0.0], [6.0, 6.0, -6.0, -6.0]])
    loss, _ = privacy_loss([unsure, sure_of_first, sure_of_second], "neg_binary_entropy")
    expected = (negative_binary_entropy(sure_of_first)[0] + negative_binary_entropy(sure_of_second)[1]) / 2
    assert loss.item() == pytest.approx(expected.item())


def test_prior_binary_kl_is_least_at_the_prevalence_not_at_a_coin_flip():
    prior = torch.tensor([0.3, 0.5])
    at_prior = torch.logit(prior).unsqueeze(0)
    assert prior_binary_kl(at_prior, prior).item() == pytest.approx(0.0, abs=1e-6)
    coin = torch.zeros(1, 2)  # p = 0.5: KL(0.5 || 0.3) on the first attribute, 0 on the second
    expected = (0.5 * math.log(0.5 / 0.3) + 0.5 * math.log(0.5 / 0.7)) / 2
    assert prior_binary_kl(coin, prior).item() == pytest.approx(expected, rel=1e-5)
    assert prior_binary_kl(coin, prior).item() > 0 == privacy_floor("prior_binary_kl", 2)
    # at a prevalence of 1/2 it is the negative binary entropy shifted by log 2
    logits = torch.tensor([[2.0, -0.5, 0.3]])
    assert prior_binary_kl(logits, torch.full((3,), 0.5)).item() == pytest.approx(
        negative_binary_entropy(logits).item() + math.log(2), rel=1e-5)


def test_prior_binary_kl_needs_the_prior_and_picks_the_most_informed_model():
    prior = torch.tensor([0.3, 0.3])
    uninformed, informed = torch.logit(prior).expand(4, 2), torch.tensor([[4.0, -4.0]]).expand(4, 2)
    loss, index = privacy_loss([uninformed, informed], "prior_binary_kl", prior=prior)
    assert index == 1 and loss.item() == pytest.approx(prior_binary_kl(informed, prior).mean().item())
    with pytest.raises(ValueError, match="'prior_binary_kl' needs the labels' prevalence"):
        privacy_loss([informed], "prior_binary_kl")
