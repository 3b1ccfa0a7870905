"""keep_freed_memory: freed tensor memory stays in the process instead of going back to the kernel."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import time

import pytest

# Allocate and free a 256 MiB tensor, then print how many MiB the process still holds (VmRSS).
_PROBE = """
import sys, torch
from raypriv.method.runtime import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory() and keep_freed_memory()  # idempotent
def rss_mib():
    line = next(l for l in open("/proc/self/status") if l.startswith("VmRSS:"))
    return int(line.split()[1]) // 1024
before = rss_mib()
x = torch.ones(64, 1024, 1024)  # 256 MiB, written so its pages are resident
del x
print(rss_mib() - before)
"""


def _held_after_free(arm: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, arm], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_keep_freed_memory_keeps_a_freed_tensor_in_the_heap() -> None:
    # Default glibc returns a large block with munmap at once; kept, its 256 MiB stay resident
    # and the next batch reuses them without page faults.
    assert _held_after_free("default") < 64
    assert _held_after_free("keep") >= 200


# A parent that holds a spawned pool, with or without the evaluation's worker initializer; it prints
# its worker's PID, gives the worker a long job, and is then SIGKILLed (as `kill -9 raypriv` would).
_PARENT = """
import multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor
if __name__ == "__main__":
    init = {}
    if sys.argv[1] == "init":
        from raypriv.method.evaluation import _worker_init
        init = {"initializer": _worker_init, "initargs": ({}, {}, os.getpid())}
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), **init)
    print(pool.submit(os.getpid).result(), flush=True)
    pool.submit(time.sleep, 120)
    time.sleep(0.5)
    os.kill(os.getpid(), 9)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def _orphan_after_parent_killed(arm: str) -> tuple[int, bool]:
    # Read only the first line: a surviving worker holds the pipe open, so reading to its end would wait.
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, arm], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        assert parent.wait(timeout=60) == -9
    finally:
        parent.stdout.close()
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return pid, _alive(pid)


@pytest.mark.skipif(platform.system() != "Linux", reason="prctl(PR_SET_PDEATHSIG)")
def test_evaluation_workers_die_with_a_killed_parent() -> None:
    pid, alive = _orphan_after_parent_killed("plain")
    try:
        assert alive, "control: a plain spawned worker outlives its SIGKILLed parent"
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    pid, alive = _orphan_after_parent_killed("init")
    if alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, "the evaluation's worker kept running after its parent was killed"
