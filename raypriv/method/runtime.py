"""Process-wide settings for training on the CPU: how freed tensor memory goes back to the system,
and worker processes that end with the process that started them.

glibc's malloc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh
`mmap` and returns it with `munmap` when freed. A batch of 768 frames at 48×48 allocates and frees
activations of tens to hundreds of MiB at every layer, so each forward pass faults in pages the
kernel must first zero: a two-fold evaluation on the 2-core development machine spent 14 of its
39 CPU-minutes in the kernel (`time raypriv baselines sbu --synthetic --profile quick --methods
silhouette`: user 24m54s, sys 14m13s). With freed memory kept in the heap for the next batch, one
attacker epoch at the laptop preset ran 1.45× (`regnet_x_400mf`, 25.9 → 17.9 s), 1.78×
(`shufflenet_v2_x0_5`) and 1.82× (`mobilenet_v2_035`) faster (`python bench/allocator.py --models
regnet_x_400mf,shufflenet_v2_x0_5,mobilenet_v2_035`, one thread). The cost is that a process's
resident size stays at its peak. Results are unchanged: where memory comes from alters no computation.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import signal
import sys

_M_TRIM_THRESHOLD = -1  # mallopt parameters from glibc's malloc.h
_M_MMAP_MAX = -4
_NO_TRIM = 2**31 - 1  # the largest value mallopt takes (an int): never give the heap's top back
_PR_SET_PDEATHSIG = 1  # prctl option from linux/prctl.h


@functools.cache
def _libc_function(name: str):
    """The C library's function `name`, or None where there is no such library or function."""
    library = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(library), name) if library else None
    except (OSError, AttributeError):  # no loadable libc, or not glibc (musl, macOS): no such call
        return None


@functools.cache
def keep_freed_memory() -> bool:
    """Make this process's glibc malloc reuse freed memory (no mmap, no trimming); False where there is no glibc.

    Idempotent; call it once per process before the heavy work (spawned worker processes call it themselves).
    """
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _NO_TRIM))


def die_with_parent(parent_pid: int) -> bool:
    """Linux: have the kernel send this process SIGTERM when its parent `parent_pid` dies; False elsewhere.

    For the evaluation's spawned worker processes: without it, killing `raypriv train` (or a Ray
    trial) while attackers are being fitted left its workers running, re-parented to init, each
    burning a core until its attacker finished. Exits at once if the parent is already gone (it died
    between starting this process and this call, so the signal would never come).
    """
    prctl = _libc_function("prctl") if sys.platform.startswith("linux") else None
    if prctl is None:
        return False
    armed = prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0
    if os.getppid() != parent_pid:
        os._exit(1)
    return armed
