"""The synthetic UCF-101 / VISPR world: sizes, determinism, balance, attributes that are visible and
that a model trained on the images reads in the video frames too."""

from __future__ import annotations

import pytest
import torch

from raypriv.method.data import PRESETS, build_dataset
from raypriv.method.data.world import (ACTIONS, ATTRIBUTE_RATES, ATTRIBUTES, IMAGES, SyntheticUCF101, SyntheticVISPR,
                                       attributes_of, draws, render)
from raypriv.method.engine import fit_classifier, score
from raypriv.method.models import create_model
from raypriv.method.tasks import MULTILABEL


def test_sizes_shapes_and_balance_of_the_tiny_preset():
    videos = build_dataset("ucf101", "train", synthetic=True, preset="tiny")
    images = build_dataset("vispr", "train", synthetic=True, preset="tiny")
    assert isinstance(videos, SyntheticUCF101) and isinstance(images, SyntheticVISPR)
    assert videos.tensors()[0].shape == (24, 3, 8, 16, 16) and videos.tensors()[0].dtype == torch.uint8
    assert images.tensors()[0].shape == (48, 3, 1, 16, 16)
    assert torch.bincount(videos.actions).tolist() == [2] * len(ACTIONS)  # balanced
    assert images.attributes.shape == (48, len(ATTRIBUTES)) and images.num_attributes == 8
    sample = images[3]
    assert sample.clip.shape == (3, 1, 16, 16) and torch.equal(sample.attributes, images.attributes[3])
    assert videos[5].action == int(videos.actions[5]) and videos[5].identity == -1


def test_every_item_is_a_function_of_seed_set_split_and_index():
    one = SyntheticVISPR("val", preset="tiny", seed=4).tensors()[0]
    assert torch.equal(one, SyntheticVISPR("val", preset="tiny", seed=4).tensors()[0])
    assert not torch.equal(one, SyntheticVISPR("val", preset="tiny", seed=5).tensors()[0])
    assert not torch.equal(one, SyntheticVISPR("test", preset="tiny", seed=4).tensors()[0])
    # an item does not depend on the chunk it was rendered in
    ds = SyntheticUCF101("val", preset="tiny")
    tau = torch.linspace(0, 1, 8).expand(len(ds), 8)
    whole = render(ds._u, ds.actions, tau, tau, PRESETS["tiny"])
    piecewise = render(ds._u, ds.actions, tau, tau, PRESETS["tiny"], chunk_pixels=1)
    assert torch.equal(whole, piecewise)


def test_attributes_follow_their_rates():
    u = draws(0, "images", "train", IMAGES["laptop"]["train"])
    rates = attributes_of(u).mean(0)
    assert rates.tolist() == pytest.approx(list(ATTRIBUTE_RATES), abs=0.05)


@pytest.mark.parametrize("attribute", ATTRIBUTES)
def test_every_attribute_is_visible(attribute):
    u = draws(1, "images", "test", 16)
    slot = 56 + ATTRIBUTES.index(attribute)
    on, off = u.clone(), u.clone()
    on[:, slot], off[:, slot] = 0.0, 0.999
    actions, tau, tt = torch.zeros(16, dtype=torch.int64), torch.full((16, 1), 0.5), torch.zeros(16, 1)
    preset = PRESETS["laptop"]
    with_it, without = (render(x, actions, tau, tt, preset).float() for x in (on, off))
    changed = (with_it - without).abs().amax(dim=1) > 40  # pixels that visibly changed colour
    assert changed.flatten(1).sum(1).min() >= 3, f"{attribute} is not visible in every image"


def test_a_privacy_model_trained_on_the_images_reads_the_attributes_in_video_frames():
    torch.manual_seed(0)
    train, val = (build_dataset("vispr", s, synthetic=True, preset="small") for s in ("train", "val"))
    videos = build_dataset("ucf101", "test", synthetic=True, preset="small")
    model = create_model("budget", "smallcnn_d3_w16", num_classes=len(ATTRIBUTES))
    fit = fit_classifier(model, (train.tensors()[0], train.attributes), (val.tensors()[0], val.attributes),
                         epochs=8, patience=8, task=MULTILABEL, device=torch.device("cpu"))
    on_frames = score(model, videos.tensors()[0][:, :, :1], videos.attributes, task=MULTILABEL)
    chance = MULTILABEL.chance(videos.attributes, len(ATTRIBUTES))
    assert on_frames > chance + 0.1, (on_frames, chance)
    assert on_frames > fit.val_score - 0.1  # what it learned on images holds on the videos' frames
