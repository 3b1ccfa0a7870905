"""Object storage: mirror an `s3://bucket/prefix` into a local cache so datasets read plain files.

`sync_s3_prefix` lists the prefix (paginated), downloads only objects whose size or ETag changed
since the last sync, and removes local copies of objects deleted remotely. It uses a plain boto3
S3 client, so the usual AWS settings apply: credentials from the environment or a profile, and
`AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3` for S3-compatible stores (MinIO, moto).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Iterator

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

log = logging.getLogger(__name__)

# Lives inside the mirror; hidden so dataset loaders that skip dot-files never see it.
MANIFEST_NAME = ".raypriv-sync.json"
_DOWNLOAD_THREADS = 8  # stays under botocore's default pool of 10 connections
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_MISSING_BUCKET_CODES = {"NoSuchBucket"}
_DENIED_CODES = {"AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split `s3://bucket/prefix` into `(bucket, prefix)`; the prefix has no leading/trailing '/'."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {uri!r}; expected s3://bucket/prefix")
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    if not _BUCKET_RE.match(bucket):
        raise ValueError(
            f"malformed S3 URI {uri!r}: bucket name {bucket!r} is not valid "
            "(3-63 characters: lowercase letters, digits, '.', '-'); expected s3://bucket/prefix"
        )
    return bucket, prefix.strip("/")


def default_cache_dir() -> Path:
    """`$RAYPRIV_CACHE_DIR`, else `~/.cache/raypriv`."""
    return Path(os.environ.get("RAYPRIV_CACHE_DIR") or Path.home() / ".cache" / "raypriv")


def sync_s3_prefix(uri: str, cache_dir: Path | None = None) -> Path:
    """Mirror `uri` (`s3://bucket/prefix`) to `<cache_dir>/s3/<bucket>/<prefix>` and return that folder.

    cache_dir: cache root (default: `default_cache_dir()`).
    Raises FileNotFoundError (no such bucket, or nothing under the prefix), PermissionError
    (no credentials, access denied) or RuntimeError (other S3 failures), each naming the URI.
    """
    bucket, prefix = parse_s3_uri(uri)
    local = Path(cache_dir or default_cache_dir()).expanduser() / "s3" / bucket / prefix
    client = _s3_client()
    with _explained_errors(uri, bucket):
        remote = _list_objects(client, bucket, prefix)
        if not remote:
            raise FileNotFoundError(f"no objects under {uri} (bucket {bucket!r}, prefix {prefix!r})")
        local.mkdir(parents=True, exist_ok=True)
        manifest_path = local / MANIFEST_NAME
        old = _read_manifest(manifest_path)
        stale = [
            (meta["key"], local / rel) for rel, meta in remote.items()
            if old.get(rel) != meta or not _has_size(local / rel, meta["size"])
        ]
        # Datasets are many small files, so requests, not bandwidth, bound the time: overlap them.
        with ThreadPoolExecutor(max_workers=_DOWNLOAD_THREADS) as pool:
            list(pool.map(lambda item: _download_atomically(client, bucket, *item), stale))
        deleted = 0
        for rel in old.keys() - remote.keys():
            # Only files an earlier sync wrote are removed; anything else in the folder is left alone.
            (local / rel).unlink(missing_ok=True)
            _prune_empty_parents((local / rel).parent, stop=local)
            deleted += 1
        _write_json_atomically(manifest_path, {"uri": f"s3://{bucket}/{prefix}", "objects": remote})
    log.info("synced %s -> %s: %d downloaded, %d deleted, %d unchanged",
             uri, local, len(stale), deleted, len(remote) - len(stale))
    return local


def check_s3_prefix(uri: str, *, action: str = "reading") -> None:
    """Fail fast, with the same messages as `sync_s3_prefix`, unless `uri`'s bucket exists and can be listed.

    For stores written later by other processes (Ray's `storage_path`): one cheap request now
    instead of a failure in the middle of a run. `action` words the message ("writing Ray
    checkpoints to").
    """
    bucket, prefix = parse_s3_uri(uri)
    with _explained_errors(uri, bucket, action=action):
        _s3_client().list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)


def _s3_client():
    # A fresh session per sync: boto3's shared default session caches credentials and is not
    # thread-safe; the client itself is, so download threads share it.
    return boto3.session.Session().client("s3")


def _has_size(path: Path, size: int) -> bool:
    return path.is_file() and path.stat().st_size == size


def _list_objects(client, bucket: str, prefix: str) -> dict[str, dict]:
    """`{relative path: {"key", "size", "etag"}}` for every object under `prefix`."""
    key_prefix = f"{prefix}/" if prefix else ""
    objects = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key_prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.endswith("/"):  # "folder" placeholder objects some tools create
                continue
            rel = PurePosixPath(key[len(key_prefix):])
            # A key like "a/../../x" must not write outside the mirror.
            if rel.is_absolute() or ".." in rel.parts or str(rel) == MANIFEST_NAME:
                raise ValueError(f"refusing to mirror s3://{bucket}/{key}: unsafe path for a local copy")
            objects[str(rel)] = {"key": key, "size": obj["Size"], "etag": obj.get("ETag", "")}
    return objects


def _download_atomically(client, bucket: str, key: str, target: Path) -> None:
    # Download to a hidden temp file beside the target, then rename: an interrupted sync leaves
    # only a stray ".*.part" file, never a truncated file under the real name.
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        with open(tmp, "wb") as out:
            shutil.copyfileobj(body, out, length=1 << 20)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _read_manifest(path: Path) -> dict[str, dict]:
    try:
        return json.loads(path.read_text())["objects"]
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return {}  # no or damaged manifest: every object counts as changed, so all are fetched


def _write_json_atomically(path: Path, data: dict) -> None:
    # A unique temp name, so processes syncing the same prefix at once never mix their writes.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".part")
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _prune_empty_parents(folder: Path, stop: Path) -> None:
    while folder != stop and folder.is_dir() and not any(folder.iterdir()):
        try:
            folder.rmdir()
        except OSError:  # refilled meanwhile (another sync); keeping it is right
            return
        folder = folder.parent


@contextmanager
def _explained_errors(uri: str, bucket: str, action: str = "reading") -> Iterator[None]:
    """Turn botocore failures into built-in errors that name the URI, never the credentials."""
    where = f"{uri} (bucket {bucket!r})"
    try:
        yield
    except (NoCredentialsError, PartialCredentialsError) as err:
        raise PermissionError(
            f"no usable AWS credentials for {action} {where}; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or an instance role)"
        ) from err
    except ClientError as err:
        error = err.response.get("Error", {})
        code = str(error.get("Code", "unknown"))
        if code in _MISSING_BUCKET_CODES:
            raise FileNotFoundError(
                f"S3 bucket {bucket!r} does not exist ({action} {uri}); check the URI and, "
                "for a custom endpoint, AWS_ENDPOINT_URL"
            ) from err
        if code in _DENIED_CODES:
            raise PermissionError(
                f"access denied ({code}) {action} {where}; check that the credentials may list "
                "and read this bucket and prefix"
            ) from err
        raise RuntimeError(f"S3 error {code} {action} {where}: {error.get('Message', '')}") from err
    except BotoCoreError as err:
        raise RuntimeError(f"could not reach S3 for {where}: {err}") from err
