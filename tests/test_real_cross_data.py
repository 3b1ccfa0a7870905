"""The real UCF-101 and VISPR loaders on fixture folders written in their official layouts."""

from __future__ import annotations

import json

import pytest
import torch

from cross_fixtures import GREY_STEP, UCF_CLASSES, UCF_FRAMES, write_avi, write_ucf101, write_vispr
from raypriv.method.data import PRESETS, build_dataset
from raypriv.method.data.ucf101 import UCF101
from raypriv.method.data.vispr import VISPR7, VISPR17, VISPR_ATTRIBUTES

TINY = PRESETS["tiny"]  # 8 frames of 16x16


@pytest.fixture(scope="module")
def ucf_root(tmp_path_factory):
    return write_ucf101(tmp_path_factory.mktemp("ucf"))


@pytest.fixture(scope="module")
def vispr_root(tmp_path_factory):
    return write_vispr(tmp_path_factory.mktemp("vispr"))


def test_vispr_subsets_are_the_papers():
    assert len(VISPR_ATTRIBUTES) == len(set(VISPR_ATTRIBUTES)) == 68
    assert len(VISPR17) == 17 and len(VISPR7) == 7
    assert set(VISPR7) <= set(VISPR17) <= set(VISPR_ATTRIBUTES)


def test_ucf101_splits_labels_and_groups(ucf_root):
    splits = {s: build_dataset("ucf101", s, preset=TINY, root=ucf_root) for s in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [18, 6, 12]  # 3 classes x 2 clips x groups
    assert splits["train"].num_actions == 3 and splits["train"].action_names == UCF_CLASSES
    groups = {s: {v.group for v in ds.videos} for s, ds in splits.items()}
    assert groups["test"] == {1, 2}
    assert len(groups["val"]) == 1 and not groups["val"] & groups["train"]  # validation by whole groups
    assert groups["val"] | groups["train"] == {8, 9, 10, 11}
    for ds in splits.values():
        assert sorted(torch.bincount(ds.actions).tolist()) == [len(ds) // 3] * 3
        assert all(UCF_CLASSES[a] in v.name for a, v in zip(ds.actions.tolist(), ds.videos))
    other = build_dataset("ucf101", "val", preset=TINY, root=ucf_root, seed=3)
    same = build_dataset("ucf101", "val", preset=TINY, root=ucf_root, seed=0)
    assert [v.name for v in same.videos] == [v.name for v in splits["val"].videos]  # deterministic by seed
    assert {v.group for v in other.videos} <= {8, 9, 10, 11}


def test_ucf101_clips_are_frames_spread_over_the_video(ucf_root):
    ds = build_dataset("ucf101", "test", preset=TINY, root=ucf_root)
    clips = ds.tensors()[0]
    assert clips.shape == (12, 3, 8, 16, 16) and clips.dtype == torch.uint8
    # frame i of a fixture video is grey GREY_STEP * i: 8 frames spread over 20 read 0, 3, 5, ... 19
    expected = torch.linspace(0, UCF_FRAMES - 1, 8).round() * GREY_STEP
    measured = clips[0, 1].float().mean(dim=(1, 2))  # the green channel, per frame
    assert torch.allclose(measured, expected, atol=6), measured
    sample = ds[0]
    assert sample.clip.shape == (3, 8, 16, 16) and sample.identity == -1 and sample.action == int(ds.actions[0])
    assert torch.equal((sample.clip * 255).round().to(torch.uint8), clips[0])


def test_ucf101_refuses_a_missing_split_file_naming_it(ucf_root):
    with pytest.raises(FileNotFoundError, match=r"trainlist02\.txt does not exist"):
        UCF101("train", preset=TINY, root=ucf_root, fold=2)


def test_ucf101_refuses_an_unreadable_video_naming_it(tmp_path):
    root = write_ucf101(tmp_path / "ucf", train_groups=(8, 9), test_groups=(1,), clips=1)
    broken = root / "UCF-101" / "YoYo" / "v_YoYo_g01_c01.avi"
    broken.write_bytes(b"not a video" * 20)
    ds = build_dataset("ucf101", "test", preset=TINY, root=root)
    with pytest.raises(ValueError, match=r"cannot decode video .*v_YoYo_g01_c01\.avi"):
        ds.tensors()
    with pytest.raises(ValueError, match=r"v_YoYo_g01_c01\.avi"):
        ds[len(ds) - 1]


def test_ucf101_refuses_a_listed_video_that_is_missing_and_a_bad_line(tmp_path):
    root = write_ucf101(tmp_path / "ucf", train_groups=(8, 9), test_groups=(1,), clips=1)
    (root / "UCF-101" / "Basketball" / "v_Basketball_g08_c01.avi").unlink()
    with pytest.raises(FileNotFoundError, match=r"trainlist01\.txt, line \d+: video .*v_Basketball_g08_c01\.avi"):
        UCF101("train", preset=TINY, root=root)
    (root / "ucfTrainTestlist" / "testlist01.txt").write_text("Skiing/v_Skiing_g01_c01.avi\n")
    with pytest.raises(ValueError, match=r"testlist01\.txt, line 1: .*'Skiing/v_Skiing_g01_c01\.avi'"):
        UCF101("test", preset=TINY, root=root)


def test_a_shared_root_holds_both_data_sets_and_the_environment_names_them(tmp_path, monkeypatch):
    write_ucf101(tmp_path / "data" / "ucf101", train_groups=(8, 9), test_groups=(1,), clips=1, videos_folder=False)
    write_vispr(tmp_path / "data" / "vispr")
    assert len(build_dataset("ucf101", "test", preset=TINY, root=tmp_path / "data")) == 3
    assert len(build_dataset("vispr", "test", preset=TINY, root=tmp_path / "data")) == 2
    monkeypatch.setenv("RAYPRIV_VISPR_ROOT", str(tmp_path / "data" / "vispr"))
    assert len(build_dataset("vispr", "val", preset=TINY)) == 2
    monkeypatch.delenv("RAYPRIV_UCF101_ROOT", raising=False)
    with pytest.raises(FileNotFoundError, match=r"RAYPRIV_UCF101_ROOT.*--synthetic"):
        build_dataset("ucf101", "test", preset=TINY)


def test_vispr_multi_hot_labels_per_subset(vispr_root):
    train = build_dataset("vispr", "train", preset=TINY, root=vispr_root, subset="vispr17")
    # image 5 carries only a82_date_time, outside VISPR-17: left out
    assert len(train) == 4 and train.num_attributes == 17 and train.attribute_names == VISPR17
    expected = torch.zeros(4, 17)
    for row, labels in enumerate((["a0_safe"], ["a4_gender", "a9_face_complete", "a12_semi_nudity"],
                                  ["a59_sports", "a64_rel_personal", "a65_rel_social"],
                                  ["a46_occupation", "a58_hobbies", "a17_color"])):
        for label in labels:
            expected[row, VISPR17.index(label)] = 1
    assert torch.equal(train.attributes, expected)
    seven = build_dataset("vispr", "train", preset=TINY, root=vispr_root, subset="vispr7")
    assert seven.num_attributes == 7 and seven.attributes.sum().item() == 7  # gender, face, colour dropped
    every = build_dataset("vispr", "train", preset=TINY, root=vispr_root, subset="all")
    assert len(every) == 5 and every.attributes[4, VISPR_ATTRIBUTES.index("a82_date_time")] == 1
    clips = train.tensors()[0]
    assert clips.shape == (4, 3, 1, 16, 16) and clips.dtype == torch.uint8
    sample = train[1]
    assert sample.action == -1 and torch.equal(sample.attributes, expected[1])


def test_vispr_finds_the_image_without_an_image_path(tmp_path):
    root = write_vispr(tmp_path / "v", with_image_path=False)
    ds = build_dataset("vispr", "test", preset=TINY, root=root)
    assert len(ds) == 2 and ds.tensors()[0].shape == (2, 3, 1, 16, 16)


def test_vispr_refuses_an_unknown_attribute_naming_the_file_and_the_attribute(tmp_path):
    root = write_vispr(tmp_path / "v")
    bad = root / "annotations" / "val2017" / "2017_00000007.json"
    bad.write_text(json.dumps({"id": "2017_00000007", "labels": ["a12_semi_nudity", "a999_smile"]}))
    with pytest.raises(ValueError, match=r"2017_00000007\.json has unknown attribute\(s\) \['a999_smile'\]"):
        build_dataset("vispr", "val", preset=TINY, root=root)


def test_vispr_refuses_missing_folders_images_and_labels(tmp_path):
    root = write_vispr(tmp_path / "v")
    (root / "images" / "test2017" / "2017_00000009.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"2017_00000009\.json: image .*2017_00000009\.jpg does not exist"):
        build_dataset("vispr", "test", preset=TINY, root=root)
    (root / "annotations" / "val2017" / "2017_00000006.json").write_text('{"id": 6}')
    with pytest.raises(ValueError, match=r"2017_00000006\.json is not JSON with a 'labels' list"):
        build_dataset("vispr", "val", preset=TINY, root=root)
    with pytest.raises(FileNotFoundError, match=r"annotations/train2017 does not exist"):
        build_dataset("vispr", "train", preset=TINY, root=tmp_path)
    with pytest.raises(ValueError, match="unknown VISPR subset 'vispr9'"):
        build_dataset("vispr", "test", preset=TINY, root=root, subset="vispr9")


def test_both_read_from_s3(moto_endpoint, tmp_path, monkeypatch):
    import boto3

    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ENDPOINT_URL", moto_endpoint),
                        ("RAYPRIV_CACHE_DIR", str(tmp_path / "cache"))):
        monkeypatch.setenv(name, value)
    local = tmp_path / "data"
    write_ucf101(local / "ucf101", train_groups=(8, 9), test_groups=(1,), clips=1)
    write_vispr(local / "vispr")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="cross")
    for path in local.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), "cross", f"sets/{path.relative_to(local).as_posix()}")
    assert len(build_dataset("ucf101", "test", preset=TINY, root="s3://cross/sets")) == 3
    assert len(build_dataset("vispr", "train", preset=TINY, root="s3://cross/sets/vispr")) == 4


def test_write_avi_round_trip(tmp_path):
    write_avi(tmp_path / "x.avi", frames=5)
    from raypriv.method.data.ucf101 import decode_clip

    clip = decode_clip(tmp_path / "x.avi", 5, (8, 8))
    assert clip.shape == (3, 5, 8, 8)
    assert clip[1].float().mean(dim=(1, 2)).tolist() == pytest.approx([GREY_STEP * i for i in range(5)], abs=6)
