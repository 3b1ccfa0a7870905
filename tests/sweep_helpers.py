"""Running the installed `raypriv` CLI in its own session, and what the OS says about its processes.

Shared by the end-to-end sweep tests (test_sweep_cli.py, test_reliability_sweep.py). Linux only
where it reads /proc.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

SWEEP_ENV_VARS = ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "RAYPRIV_HOME", "RAYPRIV_OPTUNA_STORAGE", "RAYPRIV_SBU_ROOT",
                  "RAYPRIV_RAY_STORAGE")


def start_raypriv(*args: str, home: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """The installed CLI in a new session, with a local Ray (no RAY_ADDRESS) and no auth token."""
    exe = shutil.which("raypriv", path=str(Path(sys.executable).parent))
    full = {k: v for k, v in os.environ.items() if k not in SWEEP_ENV_VARS}
    full.update(RAY_AUTH_MODE="disabled", RAYPRIV_HOME=str(home), **(env or {}))
    return subprocess.Popen([exe, *args], env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def store_value(db: Path, sql: str, params: tuple = ()):
    """The first column of the first row `sql` finds in the sqlite MLflow store `db`, read-only, or
    None while there is no store, no such table yet, or the driver holds it locked.

    Read with sqlite3 directly: an MlflowClient opened while the driver still migrates a fresh store
    would run the migration a second time and fail ("table ... already exists")."""
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute(sql, params).fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def store_ready(home: Path, experiment: str = "sbu") -> bool:
    """True once the driver's sqlite MLflow store holds `experiment`: its schema migration has finished."""
    return store_value(home / "mlflow.db", "SELECT 1 FROM experiments WHERE name = ?", (experiment,)) is not None


def finish(proc: subprocess.Popen, args: tuple[str, ...], timeout: int) -> subprocess.CompletedProcess:
    """Wait for `proc`; on timeout kill its session (the driver and the Ray processes it started) and fail."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_session(proc.pid)
        out, _ = proc.communicate()
        pytest.fail(f"raypriv {' '.join(args)} timed out:\n{out[-5000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def run_raypriv(*args: str, home: Path, timeout: int = 420, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return finish(start_raypriv(*args, home=home, env=env), args, timeout)


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, session id) of a live process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), int(fields[3])


def session_pids(root: int) -> set[int]:
    """Every live process in session `root` (a process started with start_new_session) or below one."""
    table = {int(e.name): s for e in os.scandir("/proc") if e.name.isdigit() and (s := _stat(int(e.name)))}
    found = {pid for pid, (_, sid) in table.items() if sid == root}
    grew = True
    while grew:
        more = {pid for pid, (ppid, _) in table.items() if ppid in found} - found
        found |= more
        grew = bool(more)
    return found


def kill_session(root: int) -> None:
    """SIGKILL every process of session `root` and below it (by PID: never `ray stop`, never by name)."""
    for _ in range(3):
        pids = session_pids(root)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)


def _address(hex_address: str) -> str:
    if len(hex_address) == 8:  # IPv4, little-endian
        return ".".join(str(int(hex_address[i:i + 2], 16)) for i in (6, 4, 2, 0))
    words = [hex_address[i:i + 8] for i in range(0, 32, 8)]  # IPv6: four little-endian 32-bit words
    raw = b"".join(bytes.fromhex(w)[::-1] for w in words)
    if raw[:12] == b"\0" * 10 + b"\xff\xff":
        return ".".join(str(b) for b in raw[12:])  # IPv4-mapped
    return "::1" if raw == b"\0" * 15 + b"\1" else ("::" if raw == b"\0" * 16 else raw.hex())


def listening_sockets(pids: set[int]) -> set[tuple[int, str, int]]:
    """(pid, address, port) of every TCP socket in LISTEN state that one of `pids` holds (from /proc)."""
    inodes: dict[str, int] = {}
    for pid in pids:
        try:
            for fd in os.scandir(f"/proc/{pid}/fd"):
                target = os.readlink(fd.path)
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = pid
        except OSError:
            continue
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    host, port = fields[1].split(":")
                    found.add((inodes[fields[9]], _address(host), int(port, 16)))
    return found


def files_containing(folder: Path, needle: bytes, *, skip: str | None = None) -> list[str]:
    """Every regular file under `folder` whose bytes contain `needle` (a leaked secret), leaving out
    paths with a `skip` folder (e.g. Ray's copy of the uploaded checkout, whose tests name it)."""
    hits = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink() and skip not in path.parts:
            try:
                if needle in path.read_bytes():
                    hits.append(str(path))
            except OSError:
                continue
    return hits
