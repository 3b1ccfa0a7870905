"""Where a real data set lives: a local folder or `s3://bucket/prefix`, given or from the environment."""

from __future__ import annotations

import os
from pathlib import Path

SYNTHETIC_HINT = "pass --synthetic (or synthetic=True) to use the embedded stand-in"


def resolve_root(root: str | Path | None, *, env: str, name: str, layout: str, subfolder: str | None = None) -> Path:
    """The local folder of data set `name`: `root`, else `$env`; an `s3://` root is first mirrored
    into the local cache (`raypriv.method.data.storage.sync_s3_prefix`).

    subfolder: when the folder holds a folder of this name (a root shared by several data sets,
    e.g. `ROOT/ucf101` and `ROOT/vispr`), that one is the data set's.
    Raises FileNotFoundError naming the root, the expected `layout` and the synthetic stand-in.
    """
    if root is None or str(root) == "":
        root = os.environ.get(env) or None
    if root is None:
        raise FileNotFoundError(
            f"no {name} root given: pass root=<folder or s3://bucket/prefix> or set ${env} "
            f"(expected layout {layout}); {SYNTHETIC_HINT}"
        )
    if str(root).startswith("s3://"):
        from raypriv.method.data.storage import sync_s3_prefix  # boto3 only when S3 is used

        try:
            path = sync_s3_prefix(str(root))
        except FileNotFoundError as err:
            raise FileNotFoundError(f"{err}; {SYNTHETIC_HINT}") from err
    else:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"{name} root {path} does not exist or is not a folder; expected {layout}; {SYNTHETIC_HINT}"
            )
    if subfolder is not None and (path / subfolder).is_dir():
        return path / subfolder
    return path
