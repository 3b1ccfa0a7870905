"""SBUKinect against a tiny on-disk tree in SBU's layout: labels, clips, splits and error messages."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from sbu_fixture import frame_colour, write_sbu_fixture

from raypriv.method.data import SPLITS, Preset, Sample, build_dataset
from raypriv.method.data.sbu import SBUKinect

PRESET = Preset("t", frames=4, height=8, width=8, clips_per_cell={"train": 1, "val": 1, "test": 1})


@pytest.fixture
def sbu_root(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "sbu"
    return root, write_sbu_fixture(root)


def _splits(root: Path, seed: int = 0) -> dict[str, SBUKinect]:
    return {split: SBUKinect(split, preset=PRESET, seed=seed, root=root) for split in SPLITS}


def _membership(root: Path, seed: int) -> dict[str, set[str]]:
    return {name: {clip.sequence for clip in ds.clips} for name, ds in _splits(root, seed).items()}


def test_clips_have_the_right_labels_shape_and_range(sbu_root):
    root, written = sbu_root
    for ds in _splits(root).values():
        assert (ds.num_actions, ds.num_identities) == (8, 13)
        assert len(ds) == len(ds.actions) == len(ds.identities) > 0
        for index, ref in enumerate(ds.clips):
            action, identity, _ = written[ref.sequence]
            assert (ref.action, ref.identity) == (action, identity)
            assert (ds.actions[index].item(), ds.identities[index].item()) == (action, identity)
        sample = ds[0]
        assert isinstance(sample, Sample) and sample.face_mask is None and sample.body_mask is None
        clip, action, identity = sample
        assert clip.shape == (3, 4, 8, 8) and clip.dtype == torch.float32
        assert 0.0 <= clip.min() and clip.max() <= 1.0
        assert (action, identity) == written[ds.clips[0].sequence][:2]


def test_s01s02_and_s02s01_are_one_identity(sbu_root):
    root, _ = sbu_root
    clips = [clip for ds in _splits(root).values() for clip in ds.clips]
    assert {c.identity for c in clips if c.sequence.split("/")[0] in ("s01s02", "s02s01")} == {0}
    assert {c.identity for c in clips if c.sequence.startswith("s04s06")} == {12}


def test_sequences_become_non_overlapping_windows_padded_with_the_last_frame(sbu_root):
    root, written = sbu_root
    datasets = _splits(root).values()
    for sequence, (action, _, n_frames) in written.items():
        found = [(ds, i) for ds in datasets for i, c in enumerate(ds.clips) if c.sequence == sequence]
        assert len(found) == max(1, n_frames // 4), sequence
        pair, action_folder, _ = sequence.split("/")
        for window, (ds, index) in enumerate(found):
            first = 4 * window + 1
            expected_frames = [min(first + t, n_frames) for t in range(4)]  # short ones repeat the last
            expected = torch.tensor([frame_colour(pair, action_folder, f) for f in expected_frames]) / 255
            clip = ds[index].clip
            # Flat-colour frames survive the resize: every pixel of frame t has frame t's colour.
            torch.testing.assert_close(clip.mean(dim=(2, 3)).T, expected, atol=1e-4, rtol=0)


def test_splits_are_disjoint_by_sequence_cover_every_identity_and_follow_the_seed(sbu_root):
    root, written = sbu_root
    by_split = _membership(root, seed=0)
    assert set().union(*by_split.values()) == set(written)
    assert sum(len(s) for s in by_split.values()) == len(written)  # no sequence in two splits
    for ds in _splits(root, seed=0).values():
        assert set(ds.identities.tolist()) == {0, 1, 12}  # each has >= 3 sequences
    assert _membership(root, seed=0) == by_split
    assert any(_membership(root, seed) != by_split for seed in (1, 2, 3))


def test_build_dataset_and_the_root_environment_variable(sbu_root, monkeypatch):
    root, _ = sbu_root
    ds = build_dataset("sbu", "train", root=root, preset=PRESET)
    assert isinstance(ds, SBUKinect) and len(ds) > 0
    monkeypatch.setenv("RAYPRIV_SBU_ROOT", str(root))
    from_env = build_dataset("sbu", "train", preset=PRESET)
    assert [c.sequence for c in from_env.clips] == [c.sequence for c in ds.clips]


def test_missing_root_suggests_synthetic(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="--synthetic") as excinfo:
        SBUKinect("train", preset=PRESET, root=missing)
    assert str(missing) in str(excinfo.value)
    monkeypatch.delenv("RAYPRIV_SBU_ROOT", raising=False)
    with pytest.raises(FileNotFoundError, match="RAYPRIV_SBU_ROOT") as excinfo:
        SBUKinect("train", preset=PRESET)
    assert "root=" in str(excinfo.value) and "--synthetic" in str(excinfo.value)


def test_root_without_pair_folders_suggests_synthetic(tmp_path):
    (tmp_path / "Set01").mkdir()
    with pytest.raises(FileNotFoundError, match="sXXsYY") as excinfo:
        SBUKinect("train", preset=PRESET, root=tmp_path)
    assert str(tmp_path) in str(excinfo.value) and "--synthetic" in str(excinfo.value)


def _break_bad_pair(root: Path) -> Path:
    (root / "s01x02" / "01" / "001").mkdir(parents=True)
    return root / "s01x02"


def _break_unknown_pair(root: Path) -> Path:
    shutil.copytree(root / "s01s03", root / "s01s04")  # s01 and s04 never recorded together
    return root / "s01s04"


def _break_action(root: Path) -> Path:
    shutil.copytree(root / "s01s02" / "01", root / "s01s02" / "09")
    return root / "s01s02" / "09"


def _break_sequence(root: Path) -> Path:
    for frame in (root / "s01s03" / "02" / "002").glob("rgb_*.png"):
        frame.unlink()
    return root / "s01s03" / "02" / "002"


@pytest.mark.parametrize(
    ("breaker", "error", "expected"),
    [
        (_break_bad_pair, ValueError, "sXXsYY"),
        (_break_unknown_pair, ValueError, "13 pairs"),
        (_break_action, ValueError, "01..08"),
        (_break_sequence, FileNotFoundError, "rgb_000001.png"),
    ],
)
def test_layout_errors_name_the_offending_path(sbu_root, breaker, error, expected):
    root, _ = sbu_root
    offending = breaker(root)
    with pytest.raises(error, match=expected) as excinfo:
        SBUKinect("train", preset=PRESET, root=root)
    assert str(offending) in str(excinfo.value)


def test_unreadable_frame_names_its_path(sbu_root):
    root, _ = sbu_root
    ds = SBUKinect("train", preset=PRESET, root=root)
    broken = ds.clips[0].frames[0]
    broken.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read frame") as excinfo:
        ds[0]
    assert str(broken) in str(excinfo.value)


def test_split_tensors_materialises_a_real_split_as_uint8(tmp_path):
    from raypriv.method.data import split_tensors

    write_sbu_fixture(tmp_path)
    ds = build_dataset("sbu", "train", root=tmp_path, preset=PRESET)
    clips, actions, identities = split_tensors(ds)
    assert clips.dtype == torch.uint8 and clips.shape == (len(ds), 3, PRESET.frames, PRESET.height, PRESET.width)
    torch.testing.assert_close(clips[0].float() / 255, ds[0].clip, atol=1 / 255, rtol=0)
    assert torch.equal(actions, ds.actions) and torch.equal(identities, ds.identities)
