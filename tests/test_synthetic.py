"""Properties of the embedded SBU-like data set (raypriv.method.data.synthetic)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from raypriv.method.data import PRESETS, SBU_ACTIONS, SBU_PAIRS, SPLITS, Preset, Sample, build_dataset, collate
from raypriv.method.data.synthetic import (
    DEFAULT_APPEARANCE_SEED,
    NUM_ACTORS,
    SyntheticSBU,
    make_appearance,
    nuisance_draws,
)

TINY = PRESETS["tiny"]
# Big enough frames for thin limbs to be drawn, small enough to render in well under a second.
SMALL = Preset("small", frames=8, height=32, width=32, clips_per_cell={"train": 2, "val": 1, "test": 1})


@pytest.fixture(scope="module")
def small_splits() -> dict[str, SyntheticSBU]:
    return {split: build_dataset("sbu", split, synthetic=True, preset=SMALL) for split in SPLITS}


def test_label_structure_is_sbus():
    assert len(SBU_ACTIONS) == 8 and len(SBU_PAIRS) == 13
    assert {a for pair in SBU_PAIRS for a in pair} == set(range(1, NUM_ACTORS + 1))
    assert len({frozenset(p) for p in SBU_PAIRS}) == 13  # unordered and distinct


@pytest.mark.parametrize("split", SPLITS)
def test_every_split_is_exactly_balanced(split):
    ds = build_dataset("sbu", split, synthetic=True, preset=SMALL)
    per_cell = SMALL.clips_per_cell[split]
    assert len(ds) == per_cell * 8 * 13
    cells = torch.bincount(ds.actions * 13 + ds.identities, minlength=104)
    assert cells.tolist() == [per_cell] * 104


def test_sample_type_and_unpacking():
    ds = build_dataset("sbu", "val", synthetic=True, preset=TINY)
    sample = ds[3]
    assert isinstance(sample, Sample)
    clip, action, identity = sample
    assert clip.dtype == torch.float32 and clip.shape == (3, TINY.frames, TINY.height, TINY.width)
    assert 0.0 <= clip.min() and clip.max() <= 1.0
    assert (action, identity) == (int(ds.actions[3]), int(ds.identities[3]))
    assert sample.face_mask.shape == sample.body_mask.shape == (TINY.frames, TINY.height, TINY.width)
    batch = next(iter(DataLoader(ds, batch_size=5, collate_fn=collate)))
    assert batch.clip.shape == (5, 3, TINY.frames, TINY.height, TINY.width)
    assert batch.action.dtype == torch.int64 and batch.identity.shape == (5,)
    assert batch.face_mask.shape == (5, TINY.frames, TINY.height, TINY.width)


def test_same_seed_split_index_gives_the_same_clip():
    one = build_dataset("sbu", "train", synthetic=True, preset=SMALL)
    two = build_dataset("sbu", "train", synthetic=True, preset=SMALL)
    assert torch.equal(one.tensors()[0], two.tensors()[0])
    # A clip does not depend on how many clips are rendered with it (chunking, split size).
    bigger = SyntheticSBU("train", preset=SMALL.with_(clips_per_cell={"train": 3, "val": 1, "test": 1}))
    assert torch.equal(bigger.tensors()[0][: len(one)], one.tensors()[0])
    assert torch.equal(bigger.tensors()[1][: len(one)], one.tensors()[1])


def test_splits_and_seeds_draw_disjoint_nuisances(small_splits):
    draws = {
        split: np.stack([nuisance_draws(0, split, i) for i in range(len(ds))])
        for split, ds in small_splits.items()
    }
    rows = np.concatenate(list(draws.values()))
    assert len(np.unique(rows.round(12), axis=0)) == len(rows)  # no draw shared across or within splits
    clips = torch.cat([ds.tensors()[0].flatten(1) for ds in small_splits.values()])
    assert len(torch.unique(clips, dim=0)) == len(clips)  # no clip repeated anywhere
    other_seed = build_dataset("sbu", "train", synthetic=True, preset=SMALL, seed=1)
    assert not torch.equal(other_seed.tensors()[0], small_splits["train"].tensors()[0])


def test_appearance_has_its_own_seed():
    assert torch.equal(make_appearance().shirt, make_appearance(DEFAULT_APPEARANCE_SEED).shirt)
    ds0 = SyntheticSBU("train", preset=TINY, seed=0)
    ds1 = SyntheticSBU("train", preset=TINY, seed=1)
    assert ds0.appearance_seed == ds1.appearance_seed == DEFAULT_APPEARANCE_SEED
    other = make_appearance(DEFAULT_APPEARANCE_SEED + 1)
    assert not torch.equal(other.shirt, make_appearance().shirt)
    # Every actor looks different from every other: shirts at least 0.1 apart in RGB.
    shirt = make_appearance().shirt
    dist = torch.cdist(shirt, shirt) + torch.eye(NUM_ACTORS)
    assert dist.min() > 0.1


def _body_colour(ds: SyntheticSBU) -> torch.Tensor:
    """Per clip: mean RGB over the body mask (the actors' clothes and skin), [N, 3]."""
    clips, masks = ds.tensors()
    body = masks[:, 1].float().unsqueeze(1) / 255
    return (clips.float() / 255 * body).sum((2, 3, 4)) / body.sum((2, 3, 4)).clamp_min(1)


def _nearest_mean_accuracy(train_x, train_y, test_x, test_y, classes: int) -> float:
    means = torch.stack([train_x[train_y == k].mean(0) for k in range(classes)])
    pred = torch.cdist(test_x, means).argmin(1)
    return (pred == test_y).float().mean().item()


def test_identity_is_static_appearance_and_action_is_motion(small_splits):
    """Static colour statistics give identity away but not the action; motion gives the action."""
    train, test = small_splits["train"], small_splits["test"]
    colour_train, colour_test = _body_colour(train), _body_colour(test)
    identity_acc = _nearest_mean_accuracy(colour_train, train.identities, colour_test, test.identities, 13)
    action_from_colour = _nearest_mean_accuracy(colour_train, train.actions, colour_test, test.actions, 8)
    assert identity_acc > 0.5  # chance 1/13: 3 mean colours already identify many pairs
    assert action_from_colour < 0.3  # chance 1/8

    def motion(ds):  # per clip: how much the body silhouette changes, frame to frame, by image row
        body = ds.tensors()[1][:, 1].float() / 255  # [N, T, H, W]
        return (body[:, 1:] - body[:, :-1]).abs().mean((1, 3))  # [N, H]

    action_from_motion = _nearest_mean_accuracy(motion(train), train.actions, motion(test), test.actions, 8)
    identity_from_motion = _nearest_mean_accuracy(motion(train), train.identities, motion(test), test.identities, 13)
    assert action_from_motion > action_from_colour + 0.1
    assert identity_from_motion < identity_acc


def test_no_single_pixel_solves_either_task(small_splits):
    """Nuisances (jitter, lighting, wall colour, noise) stop any one pixel value from giving a label away."""
    train, test = small_splits["train"], small_splits["test"]
    xtr = train.tensors()[0].float().flatten(1)  # every (channel, frame, y, x) value is a candidate
    xte = test.tensors()[0].float().flatten(1)
    for labels_tr, labels_te, classes, bound in (
        (train.identities, test.identities, 13, 0.3),
        (train.actions, test.actions, 8, 0.3),
    ):
        means = torch.stack([xtr[labels_tr == k].mean(0) for k in range(classes)])  # [K, P]
        pred = (xte.unsqueeze(1) - means.unsqueeze(0)).abs().argmin(1)  # [N, P] nearest class mean
        best_pixel = (pred == labels_te.unsqueeze(1)).float().mean(0).max().item()
        assert best_pixel < bound, f"one pixel gives {best_pixel:.2f} accuracy over {classes} classes"


def test_masks_cover_faces_inside_bodies(small_splits):
    ds = small_splits["val"]
    clips, masks = ds.tensors()
    face, body = masks[:, 0].float() / 255, masks[:, 1].float() / 255
    assert (face <= body + 1e-6).all()  # a face is part of a body
    face_area, body_area = face.mean((2, 3)), body.mean((2, 3))  # per clip and frame
    assert (face_area > 0).all() and (body_area > face_area).all()
    assert 0.05 < body_area.mean() < 0.4 and face_area.mean() < 0.05
    # Outside the bodies there is only wall: blanking the bodies removes the clothes' colours.
    outside = clips.float() / 255 * (1 - body).unsqueeze(1)
    inside = clips.float() / 255 * body.unsqueeze(1)
    assert inside.sum() > 0 and outside.sum() > 0


def test_presets_are_named_and_validated():
    assert {"tiny", "laptop", "paper"} <= set(PRESETS)
    assert (PRESETS["paper"].frames, PRESETS["paper"].height, PRESETS["paper"].width) == (16, 112, 112)
    laptop = PRESETS["laptop"]
    assert 8 <= laptop.frames <= 16 and 48 <= laptop.height <= 64
    with pytest.raises(ValueError, match="frames"):
        Preset("bad", frames=0, height=8, width=8)
    with pytest.raises(ValueError, match="clips_per_cell"):
        Preset("bad", frames=4, height=8, width=8, clips_per_cell={"train": 1})
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        build_dataset("sbu", "train", synthetic=True, preset="huge")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        build_dataset("sbu", "dev", synthetic=True)
    with pytest.raises(ValueError, match="unknown dataset 'kinetics'"):
        build_dataset("kinetics", "train", synthetic=True)


def test_rendered_lazily_in_memory_and_never_written_to_disk(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    ds = build_dataset("sbu", "test", synthetic=True, preset=TINY)
    assert ds._clips is None  # building the dataset renders nothing
    assert len(ds) == 104 and ds.actions.shape == (104,)  # labels need no rendering
    assert ds._clips is None
    ds[0]
    assert ds._clips is not None
    assert list(tmp_path.iterdir()) == []
