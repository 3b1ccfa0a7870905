"""S3 mirroring against a local moto server: incremental sync, deletions, errors, and SBU from S3."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import boto3
import pytest
from sbu_fixture import write_sbu_fixture

from raypriv.method.data import Preset, build_dataset
from raypriv.method.data import storage
from raypriv.method.data.storage import MANIFEST_NAME, parse_s3_uri, sync_s3_prefix

SECRET = "sEcReT-value-that-must-never-leak"
# Few files keep the moto round trips cheap; identity 0 still has the 3 sequences every split needs.
SEQUENCES = (
    ("s01s02", "01", "001", 5),
    ("s01s02", "05", "001", 2),
    ("s02s01", "08", "001", 3),
    ("s04s06", "07", "001", 2),
)
PRESET = Preset("t", frames=4, height=8, width=8, clips_per_cell={"train": 1, "val": 1, "test": 1})


@pytest.fixture
def s3(moto_endpoint, monkeypatch, tmp_path):
    """A client on the moto server, with the environment sync_s3_prefix will see, and a fresh bucket."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    # Keep the developer's own AWS config and the EC2 metadata service out of the tests.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("RAYPRIV_CACHE_DIR", str(tmp_path / "cache"))
    # Each test starts from an empty server.
    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")).close()
    client = boto3.client("s3")
    client.create_bucket(Bucket="sbu-bucket")
    return client


@pytest.fixture
def uploaded(s3, tmp_path) -> dict[str, bytes]:
    """The SBU fixture under s3://sbu-bucket/data/sbu; returns {relative path: bytes}."""
    local = tmp_path / "upload"
    write_sbu_fixture(local, SEQUENCES)
    files = {p.relative_to(local).as_posix(): p.read_bytes() for p in sorted(local.rglob("*")) if p.is_file()}
    for rel, body in files.items():
        s3.put_object(Bucket="sbu-bucket", Key=f"data/sbu/{rel}", Body=body)
    return files


@pytest.fixture
def downloads(monkeypatch) -> list[str]:
    """Keys that sync_s3_prefix downloads, recorded by wrapping the client it makes."""
    keys: list[str] = []
    make_client = storage._s3_client

    def spying_client():
        client = make_client()
        get_object = client.get_object

        def recording_get_object(**kwargs):
            keys.append(kwargs["Key"])
            return get_object(**kwargs)

        client.get_object = recording_get_object
        return client

    monkeypatch.setattr(storage, "_s3_client", spying_client)
    return keys


def _local_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and p.name != MANIFEST_NAME}


def test_parse_s3_uri():
    assert parse_s3_uri("s3://bucket/a/b/") == ("bucket", "a/b")
    assert parse_s3_uri("s3://bucket") == ("bucket", "")
    for bad in ("bucket/a", "s3://", "s3:///a", "http://bucket/a", "s3://Bad_Bucket/a"):
        with pytest.raises(ValueError, match="s3://bucket/prefix"):
            parse_s3_uri(bad)


def test_sync_is_incremental_and_follows_changes_and_deletions(s3, uploaded, downloads, tmp_path):
    local = sync_s3_prefix("s3://sbu-bucket/data/sbu")
    assert local == tmp_path / "cache" / "s3" / "sbu-bucket" / "data" / "sbu"
    assert _local_files(local) == uploaded
    assert sorted(downloads) == sorted(f"data/sbu/{rel}" for rel in uploaded)

    downloads.clear()
    assert sync_s3_prefix("s3://sbu-bucket/data/sbu/") == local
    assert downloads == []

    changed, deleted = "s01s02/01/001/rgb_000001.png", "s04s06/07/001/rgb_000002.png"
    s3.put_object(Bucket="sbu-bucket", Key=f"data/sbu/{changed}", Body=b"new bytes")
    s3.delete_object(Bucket="sbu-bucket", Key=f"data/sbu/{deleted}")
    sync_s3_prefix("s3://sbu-bucket/data/sbu")
    assert downloads == [f"data/sbu/{changed}"]
    expected = {**uploaded, changed: b"new bytes"}
    del expected[deleted]
    assert _local_files(local) == expected
    assert not list(local.rglob("*.part"))  # no temp files left behind


def test_a_missing_local_copy_is_fetched_again(s3, uploaded, downloads):
    local = sync_s3_prefix("s3://sbu-bucket/data/sbu")
    (local / "s02s01/08/001/rgb_000002.png").unlink()
    downloads.clear()
    sync_s3_prefix("s3://sbu-bucket/data/sbu")
    assert downloads == ["data/sbu/s02s01/08/001/rgb_000002.png"]


def test_build_dataset_reads_an_s3_root(s3, uploaded):
    ds = build_dataset("sbu", "train", root="s3://sbu-bucket/data/sbu", preset=PRESET)
    clip, action, identity = ds[0]
    assert clip.shape == (3, 4, 8, 8) and len(ds) > 0


def test_missing_bucket_is_named_and_the_secret_never_appears(s3):
    with pytest.raises(FileNotFoundError, match="no-such-bucket") as excinfo:
        sync_s3_prefix("s3://no-such-bucket/data")
    assert SECRET not in str(excinfo.value) and SECRET not in repr(excinfo.value.__cause__)


def test_empty_prefix_and_missing_credentials(s3, monkeypatch):
    with pytest.raises(FileNotFoundError, match="s3://sbu-bucket/nothing-here"):
        sync_s3_prefix("s3://sbu-bucket/nothing-here")
    with pytest.raises(FileNotFoundError, match="--synthetic"):
        build_dataset("sbu", "train", root="s3://sbu-bucket/nothing-here", preset=PRESET)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)  # a key id is missing, the secret is not
    with pytest.raises(PermissionError, match="credentials") as excinfo:
        sync_s3_prefix("s3://sbu-bucket/data")
    assert "sbu-bucket" in str(excinfo.value) and SECRET not in str(excinfo.value)


def test_an_interrupted_download_leaves_no_file_under_the_real_name(s3, uploaded, monkeypatch):
    victim = "s01s02/01/001/rgb_000003.png"
    make_client = storage._s3_client

    def cut(*args):
        raise ConnectionResetError("connection cut mid-download")

    def failing_client():
        client = make_client()
        get_object = client.get_object

        def get_object_or_fail(**kwargs):
            response = get_object(**kwargs)
            if kwargs["Key"].endswith(victim):
                response["Body"].read = cut
            return response

        client.get_object = get_object_or_fail
        return client

    monkeypatch.setattr(storage, "_s3_client", failing_client)
    with pytest.raises(ConnectionResetError):
        sync_s3_prefix("s3://sbu-bucket/data/sbu")
    local = storage.default_cache_dir() / "s3" / "sbu-bucket" / "data" / "sbu"
    assert not (local / victim).exists() and not list(local.rglob("*.part"))
    monkeypatch.setattr(storage, "_s3_client", make_client)
    assert _local_files(sync_s3_prefix("s3://sbu-bucket/data/sbu")) == uploaded
