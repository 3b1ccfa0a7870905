"""The training engine every phase of raypriv runs on: one update step, batch sampling, frame
sub-sampling, fit-to-convergence and accuracy.

Algorithm 1's phases (`raypriv.method.adversarial`), the two-fold evaluation's attackers
(`raypriv.method.evaluation`) and the baselines all train through `step` and `fit_classifier` and
measure with `accuracy`; nothing else in raypriv updates weights.

Clips stay uint8 `[N, 3, T, H, W]` on the CPU until a batch is drawn; `transform` (e.g. a
degrader or downsampling) runs per batch on the training device.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class FitResult:
    val_accuracy: float  # best validation accuracy; the returned model holds those weights
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


def step(loss: torch.Tensor, optimizers: list[torch.optim.Optimizer], where: str) -> float:
    """One gradient step of `loss` on every optimizer; a non-finite loss stops the run, naming `where`.

    Every update in raypriv (classifier fitting, each phase of Algorithm 1) goes through here.
    """
    value = loss.item()
    if not math.isfinite(value):
        raise FloatingPointError(f"loss became {value} in {where}")
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    loss.backward()
    for opt in optimizers:
        opt.step()
    return value


def batches(n: int, batch_size: int, generator: torch.Generator | None = None, *,
            drop_last: bool = False, repeat: bool = False) -> Iterator[torch.Tensor]:
    """Index batches over `n` items: shuffled by `generator` (in order without one), one pass or,
    with `repeat`, a fresh shuffle every pass forever; `drop_last` leaves out a short last batch."""
    while True:
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        for lo in range(0, n - batch_size + 1 if drop_last else n, batch_size):
            yield order[lo : lo + batch_size]
        if not repeat:
            return


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
    device = device or next(model.parameters()).device
    batch_size = batch_size or _INFERENCE_CLIPS.get(torch.device(device).type, 64)
    model.eval()
    correct = 0
    for idx in batches(len(clips), batch_size):
        logits = model(_to_input(clips[idx], device, transform))
        correct += (logits.argmax(1).cpu() == labels[idx]).sum().item()
    return correct / max(1, len(clips))


def fit_classifier(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    *,
    transform: Transform | None = None,
    epochs: int = 30,
    patience: int = 6,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 32,
    seed: int = 0,
    device: torch.device | None = None,
    train_frames: int | None = None,
) -> FitResult:
    """Train `model` (in place) with AdamW + cosine schedule, keep the best-validation weights.

    Stops after `patience` epochs without a better validation accuracy, or after `epochs`.
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
        for idx in batches(len(clips), batch_size, generator):
            if len(idx) < 2:  # BatchNorm cannot train on a single clip
                continue
            logits = model(_to_input(frame_subset(clips[idx], train_frames, generator), device, transform))
            step(F.cross_entropy(logits, labels[idx].to(device)), [opt], f"fit_classifier epoch {epoch}")
        sched.step()
        acc = accuracy(model, *val, transform=transform, device=device)
        if acc > best:
            best, best_epoch, best_state = acc, epoch, copy.deepcopy(model.state_dict())
        if epoch - best_epoch >= patience or best >= 1.0:
            break
    model.load_state_dict(best_state)
    return FitResult(val_accuracy=best, epochs=epoch, best_epoch=best_epoch)
