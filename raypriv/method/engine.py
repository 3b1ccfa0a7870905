"""The training engine every phase of raypriv runs on: one update step, batch sampling, frame
sub-sampling, fit-to-convergence and scoring (accuracy, or cMAP for a multi-label task).

Algorithm 1's phases (`raypriv.method.adversarial`), the two-fold evaluation's attackers
(`raypriv.method.evaluation`) and the baselines all train through `step` and `fit_classifier` and
measure with `score` (`accuracy` for the multi-class case); nothing else in raypriv updates
weights. What a model is trained and judged for is a `raypriv.method.tasks.Task`: its loss and
its score (accuracy or cMAP), so the engine never branches on the kind of task.

Clips stay uint8 `[N, 3, T, H, W]` on the CPU until a batch is drawn; `transform` (e.g. a
degrader or downsampling) runs per batch on the training device.

Data parallelism: inside a torch process group (a sweep trial with several Ray Train workers,
`raypriv.sweep.distributed`) every rank draws the same global batch from the same random stream
and trains on its shard of it (`shard`); `step` averages the gradients (and the loss it checks)
over the ranks, `score` has each rank predict its share of the clips and gathers the logits on
every rank (`gather_shards`), so weights, early stopping and every threshold decision stay
identical on all ranks. Outside a process group,
or inside `alone()`, all of this is the plain single-process path.
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
import torch.distributed as dist
import torch.nn as nn

from raypriv.method.tasks import MULTICLASS, Task

Transform = Callable[[torch.Tensor], torch.Tensor]
_ALONE = [False]  # inside `alone()`: this process trains by itself even within a process group


@dataclass(frozen=True)
class FitResult:
    val_score: float  # best validation score (the task's: accuracy or cMAP); the model holds those weights
    epochs: int  # epochs run before early stopping or the cap
    best_epoch: int


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def frozen(module: nn.Module | Transform) -> Transform:
    """`module` (or any callable) as a per-batch transform that is neither trained nor tracked by autograd."""
    if isinstance(module, nn.Module):
        module.eval()

    def transform(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(x)

    return transform


def world() -> tuple[int, int]:
    """(rank, number of ranks) this process trains with: (0, 1) outside a process group or in `alone()`."""
    if _ALONE[0] or not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """Train and measure in this process only, within a process group (one model per rank)."""
    before, _ALONE[0] = _ALONE[0], True
    try:
        yield
    finally:
        _ALONE[0] = before


def shard(idx: torch.Tensor) -> torch.Tensor:
    """This rank's share of a global batch of indices (all of it on one rank)."""
    rank, size = world()
    return idx[rank::size] if size > 1 else idx


def all_sum(values: Sequence[float]) -> list[float]:
    """`values` summed over the ranks (as they are on one rank)."""
    if world()[1] == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return t.tolist()


def gather_shards(values: torch.Tensor, n: int) -> torch.Tensor:
    """The rows of all ranks, in global order, on every rank: this rank holds rows `rank::size` of
    `n` (what `shard` dealt it). Exact for any dtype, so a score computed from them is the same
    number on every rank."""
    rank, size = world()
    if size == 1:
        return values
    parts: list = [None] * size
    dist.all_gather_object(parts, values.detach().cpu())
    template = next(p for p in parts if len(p))
    out = torch.empty((n, *template.shape[1:]), dtype=template.dtype)
    for r, part in enumerate(parts):
        out[r::size] = part
    return out


def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def step(loss: torch.Tensor, optimizers: list[torch.optim.Optimizer], where: str) -> float:
    """One gradient step of `loss` on every optimizer; a non-finite loss stops the run, naming `where`.

    Every update in raypriv (classifier fitting, each phase of Algorithm 1) goes through here. On
    several ranks the gradients and the loss are averaged over them first (one all-reduce), so
    every rank applies the same update and stops on the same loss.
    """
    if world()[1] > 1:
        return _distributed_step(loss, optimizers, where)
    value = loss.item()
    if not math.isfinite(value):
        raise FloatingPointError(f"loss became {value} in {where}")
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    loss.backward()
    for opt in optimizers:
        opt.step()
    return value


def _distributed_step(loss: torch.Tensor, optimizers: list[torch.optim.Optimizer], where: str) -> float:
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for opt in optimizers for group in opt.param_groups for p in group["params"] if p.grad is not None]
    flat = torch.cat([loss.detach().reshape(1).float(), *(p.grad.reshape(-1).float() for p in params)])
    flat = flat.to(_comm_device())
    dist.all_reduce(flat)
    flat /= world()[1]
    value = flat[0].item()
    if not math.isfinite(value):
        raise FloatingPointError(f"loss became {value} in {where}")
    offset = 1
    for p in params:
        p.grad.copy_(flat[offset : offset + p.grad.numel()].view_as(p.grad))
        offset += p.grad.numel()
    for opt in optimizers:
        opt.step()
    return value


def sync_buffers(module: nn.Module) -> None:
    """Average the floating-point buffers (BatchNorm's running statistics) over the ranks: each rank
    updated them on its own shards, and the model must score the same on every rank."""
    if world()[1] == 1:
        return
    for buffer in module.buffers():
        if buffer.is_floating_point():
            reduced = buffer.detach().to(_comm_device())
            dist.all_reduce(reduced)
            buffer.copy_(reduced.to(buffer.device) / world()[1])


class Batches:
    """Index batches over `n` items: shuffled by `generator` (in order without one), one pass or,
    with `repeat`, a fresh shuffle every pass forever; `drop_last` leaves out a short last batch.

    Its position is state (`state_dict`), so a resumed run draws the batches an uninterrupted one would.
    """

    def __init__(self, n: int, batch_size: int, generator: torch.Generator | None = None, *,
                 drop_last: bool = False, repeat: bool = False) -> None:
        self.n, self.batch_size, self.generator, self.drop_last, self.repeat = n, batch_size, generator, drop_last, repeat
        self.order: torch.Tensor | None = None  # the current pass's permutation
        self.position = 0

    def __iter__(self) -> "Batches":
        return self

    def __next__(self) -> torch.Tensor:
        end = self.n - self.batch_size + 1 if self.drop_last else self.n
        if self.order is None or self.position >= end:
            if self.order is not None and not self.repeat:
                raise StopIteration
            self.order = torch.randperm(self.n, generator=self.generator) if self.generator is not None \
                else torch.arange(self.n)
            self.position = 0
            if self.position >= end:  # fewer items than one batch with drop_last
                raise StopIteration
        idx = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return idx

    def state_dict(self) -> dict:
        return {"order": self.order if self.order is not None else torch.empty(0, dtype=torch.int64),
                "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.order = state["order"] if len(state["order"]) else None
        self.position = int(state["position"])


def _to_input(clips: torch.Tensor, device: torch.device, transform: Transform | None) -> torch.Tensor:
    """uint8 clips (raw frames) -> floats in [0, 1]; float clips (e.g. cached f_d(X)) are taken as they are."""
    x = clips.to(device, non_blocking=True)
    x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
    return transform(x) if transform is not None else x


def frame_subset(clips: torch.Tensor, frames: int | None, generator: torch.Generator) -> torch.Tensor:
    """`frames` random frames of every clip in the batch (all of them when None or >= T)."""
    if frames is None or frames >= clips.shape[2]:
        return clips
    keep = torch.randperm(clips.shape[2], generator=generator)[:frames].sort().values
    return clips[:, :, keep]


@torch.no_grad()
def degrade_split(transform: Transform, clips: torch.Tensor, device: torch.device, batch_size: int = 32) -> torch.Tensor:
    """f_d(clips) for uint8 clips, as float16 on the CPU (the attackers' fixed input)."""
    out = [transform(clips[lo : lo + batch_size].to(device).float().div_(255)).half().cpu()
           for lo in range(0, len(clips), batch_size)]
    return torch.cat(out)


# Clips per inference forward (validation and test accuracy). On the CPU small batches are much
# faster: a frame-level attacker sees clips x frames images at once, and 64 clips of the laptop
# preset (768 frames of 48x48) no longer fit the caches: one thread scored 64 validation clips in
# 1.7 s with 4 clips a forward against 3.8 s with 64 (regnet_x_400mf; shufflenet_v2_x0_5 1.2 s
# against 4.7-5.2 s, mobilenet_v2_035 1.3 s against 3.4 s), with bit-identical logits for every
# attacker tested (eval mode: no sample depends on another). GPUs want the large batch.
_INFERENCE_CLIPS = {"cpu": 4, "cuda": 64}


@torch.no_grad()
def predict(
    model: nn.Module,
    clips: torch.Tensor,
    *,
    transform: Transform | None = None,
    batch_size: int | None = None,
    device: torch.device | None = None,
) -> torch.Tensor:
    """`model`'s logits for every clip (on the CPU), `batch_size` clips a forward (default: per device).

    On several ranks each predicts its share of the clips and the logits are gathered on all.
    """
    device = device or next(model.parameters()).device
    batch_size = batch_size or _INFERENCE_CLIPS.get(torch.device(device).type, 64)
    model.eval()
    sync_buffers(model)
    mine = shard(torch.arange(len(clips)))
    logits = [model(_to_input(clips[mine[idx]], device, transform)).cpu() for idx in Batches(len(mine), batch_size)]
    return gather_shards(torch.cat(logits) if logits else torch.empty(0), len(clips))


def score(
    model: nn.Module,
    clips: torch.Tensor,
    labels: torch.Tensor,
    *,
    task: Task = MULTICLASS,
    transform: Transform | None = None,
    batch_size: int | None = None,
    device: torch.device | None = None,
) -> float:
    """`task`'s score of `model` on uint8 clips: top-1 accuracy, or cMAP for a multi-label task."""
    return task.score(predict(model, clips, transform=transform, batch_size=batch_size, device=device), labels)


def accuracy(
    model: nn.Module,
    clips: torch.Tensor,
    labels: torch.Tensor,
    *,
    transform: Transform | None = None,
    batch_size: int | None = None,
    device: torch.device | None = None,
) -> float:
    """Top-1 accuracy of `model` on uint8 clips, `batch_size` clips a forward (default: per device)."""
    return score(model, clips, labels, task=MULTICLASS, transform=transform, batch_size=batch_size, device=device)


def batch_score(task: Task, logits: torch.Tensor, labels: torch.Tensor, n: int) -> float:
    """`task`'s score of one global batch of `n` items from this rank's shard of its logits and labels."""
    return task.score(gather_shards(logits.detach().cpu(), n), gather_shards(labels.cpu(), n))


def fit_classifier(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    *,
    transform: Transform | None = None,
    epochs: int = 30,
    patience: int = 6,
    min_epochs: int = 0,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 32,
    seed: int = 0,
    device: torch.device | None = None,
    train_frames: int | None = None,
    task: Task = MULTICLASS,
) -> FitResult:
    """Train `model` (in place) with AdamW + cosine schedule, keep the best-validation weights.

    `task` gives the loss (cross-entropy, or binary cross-entropy for multi-label attributes) and
    the validation score (accuracy, or cMAP). Stops after `patience` epochs without a better
    validation score (once `min_epochs` have run), or after `epochs`.
    `train_frames`: each training batch shows the model only this many random frames of every
    clip (a frame-averaging model sees different frames each epoch; validation uses all frames).
    """
    device = device or default_device()
    model.to(device)
    generator = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    clips, labels = train
    best, best_epoch, best_state = -1.0, 0, None
    epoch = 0
    for epoch in range(1, epochs + 1):
        model.train()
        for idx in Batches(len(clips), batch_size, generator):
            if len(idx) < 2 * world()[1]:  # BatchNorm cannot train on a single clip (on any rank)
                continue
            idx = shard(idx)
            logits = model(_to_input(frame_subset(clips[idx], train_frames, generator), device, transform))
            step(task.loss(logits, labels[idx].to(device)), [opt], f"fit_classifier epoch {epoch}")
        sched.step()
        acc = score(model, *val, task=task, transform=transform, device=device)
        if acc > best:
            best, best_epoch, best_state = acc, epoch, copy.deepcopy(model.state_dict())
        if (epoch >= min_epochs and epoch - best_epoch >= patience) or best >= 1.0:
            break
    if best_state is None:  # cMAP is NaN when no validation item has any attribute
        raise ValueError(f"the validation score was never a number ({task.metric} {acc}): the validation "
                         "split has no positive label to score")
    model.load_state_dict(best_state)
    return FitResult(val_score=best, epochs=epoch, best_epoch=best_epoch)
