"""The process group of a trial's Ray Train workers, set up by raypriv instead of Ray's torch backend.

Ray's torch backend rendezvouses through a torch `TCPStore`, whose server listens on every
interface (`::`) whatever host it is given: a laptop sweep must open nothing beyond 127.0.0.1
(docs/RELIABILITY.md, exposure). So the trainer's backend (`ProcessGroupConfig`, a `TorchConfig`
whose backend starts no process group) leaves it to the workers: `join_process_group` binds the
store's socket to the node's own address first and hands it to `TCPStore` (`master_listen_fd`),
and points gloo at the same interface. With one worker there is no process group at all.

Everything here is public Ray and torch API (`ray.train.backend.Backend` is a DeveloperAPI,
`ray.train.collective.broadcast_from_rank_zero` public alpha).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
from dataclasses import dataclass
from typing import Iterator

import ray.train
import torch
import torch.distributed as dist
from ray.train.backend import Backend
from ray.train.collective import broadcast_from_rank_zero
from ray.train.torch import TorchConfig


class _WorkerOwnedProcessGroup(Backend):
    """A torch backend that leaves the process group to the workers (`join_process_group`)."""

    share_cuda_visible_devices = True  # as Ray's torch backend: each worker sees every GPU of its node


@dataclass
class ProcessGroupConfig(TorchConfig):
    """`TorchConfig` (so Ray still pins each worker to its CUDA device) without Ray's rendezvous."""

    @property
    def backend_cls(self):
        return _WorkerOwnedProcessGroup


def _loopback_interface() -> str | None:
    """The name of the loopback interface (`lo` on Linux, `lo0` on macOS), for gloo's sockets."""
    names = [name for _, name in socket.if_nameindex()]
    return next((n for n in ("lo", "lo0") if n in names), None)


@contextlib.contextmanager
def join_process_group(timeout_s: float = 1800.0) -> Iterator[int]:
    """Inside a Ray Train worker: the trial's process group (gloo on CPU, NCCL on GPU) for the
    block, listening on this node's address only; yields the world size (1: no group at all)."""
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(context.get_local_rank()))
    if world == 1:
        yield 1
        return
    address = ray.util.get_node_ip_address()
    if address.startswith("127.") and (interface := _loopback_interface()):
        os.environ["GLOO_SOCKET_IFNAME"] = interface  # gloo binds the address of this interface
    timeout = datetime.timedelta(seconds=timeout_s)
    if rank == 0:
        listener = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((address, 0))
        port = listener.getsockname()[1]
        store = dist.TCPStore(address, port, world, True, timeout, wait_for_workers=False,
                              master_listen_fd=listener.detach())
    master = broadcast_from_rank_zero((address, port) if rank == 0 else None)
    if rank != 0:
        store = dist.TCPStore(master[0], master[1], world, False, timeout)
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=timeout)
    try:
        yield world
    finally:
        dist.destroy_process_group()
