"""Algorithm 1 of Wu et al. (appendix A): the adversarial game, with a budget-model ensemble and restarts.

Each phase is a function of the `Game` (the models, their optimizers, the data and the random
stream it carries); `train_adversarial` is the short driver that runs them in order:

1. `reconstruct`: f_d starts as an L1 reconstruction of its input (`pretrain.degrader_steps`).
2. `pretrain_target`: f_T is trained jointly with f_d on the action, to its early stop; then
   `fit_budgets` trains each of the M budget models f_b on the frozen f_d(X) for identity.
3. Every adversarial iteration (`adversarial_iteration`):
   a. `privacy_step`: f_d and f_T take one step on `L_T + γ · max_i L_B(f_b^i(f_d(X))) + α · |f_d(X) − X|₁`,
      the budget models frozen in eval mode (the max picks the most confident one);
   b. `target_phase`: while f_T's validation accuracy ≤ threshold₁, f_T and f_d take L_T steps
      (at most `target_max_steps`);
   c. `budget_phase`: the budget models take cross-entropy steps until their batch accuracy
      exceeds threshold₂ (at most `budget_max_steps`; the original code's loops had no cap);
   d. `restart_budgets`: every R = `restart_every` iterations all M budget models restart from
      fresh random weights and are trained on the current f_d(X) before the game resumes.

Every update goes through `raypriv.method.engine.step`, the one update rule.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from raypriv.method.config import RunConfig
from raypriv.method.engine import (accuracy, batches, default_device, degrade_split, fit_classifier, frame_subset,
                                   frozen, step)
from raypriv.method.losses import privacy_loss
from raypriv.method.models import budget_model_names, create_model
from raypriv.method.runtime import keep_freed_memory

# split -> (uint8 clips [N, 3, T, H, W], actions [N], identities [N])
SplitTensors = Mapping[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
_VAL_CHECK_CLIPS = 128  # f_T's validation accuracy is checked on this many val clips, once per iteration


@dataclass
class Trained:
    """The outcome of one run of the loop."""

    degrader: nn.Module
    target: nn.Module
    budgets: list[nn.Module]
    budget_names: list[str]
    history: list[dict[str, float]] = field(default_factory=list)  # one row per adversarial iteration
    steps: dict[str, int] = field(default_factory=dict)  # phase -> update steps taken
    seconds: dict[str, float] = field(default_factory=dict)  # phase -> wall time
    # pre-training's outcome: best validation accuracy of f_d + f_T (action) and of each f_b (identity)
    pretrain: dict[str, float] = field(default_factory=dict)


@dataclass
class Game:
    """What Algorithm 1 carries from phase to phase: the three players, the data, one random stream."""

    cfg: RunConfig
    data: SplitTensors
    device: torch.device
    num_identities: int
    generator: torch.Generator  # batch order and frame draws of every phase
    batches: Iterator[torch.Tensor]  # endless shuffled training batches
    out: Trained
    optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    budget_optimizers: list[torch.optim.Optimizer] = field(default_factory=list)
    target_acc: float = 0.0  # f_T's last validation check
    totals: dict[str, int] = field(default_factory=lambda: {"adversarial": 0, "target": 0, "budget": 0, "restart": 0})

    @property
    def degrader(self) -> nn.Module:
        return self.out.degrader

    @property
    def target(self) -> nn.Module:
        return self.out.target

    @property
    def budgets(self) -> list[nn.Module]:
        return self.out.budgets

    def clip_batch(self, idx: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        """Training clips `idx` (`frames` random frames of each, all when None) as floats on the device."""
        clips = frame_subset(self.data["train"][0][idx], frames, self.generator)
        return clips.to(self.device).float().div_(255)

    def labels(self, idx: torch.Tensor, task: int) -> torch.Tensor:
        """Training labels of clips `idx`: task 1 the action, 2 the identity (columns of the split)."""
        return self.data["train"][task][idx].to(self.device)

    def new_budgets(self, round_: int) -> list[nn.Module]:
        """The M budget models with fresh weights, seeded by the run seed, the restart round and the index."""
        channels = self.degrader.out_channels
        models = []
        for i, name in enumerate(self.out.budget_names):
            torch.manual_seed(self.cfg.seed * 100_003 + round_ * 1_009 + i)
            models.append(create_model("budget", name, num_classes=self.num_identities, in_channels=channels)
                          .to(self.device))
        return models


def start_game(cfg: RunConfig, data: SplitTensors, *, num_actions: int, num_identities: int,
               device: torch.device) -> Game:
    """Fresh f_d, f_T and M budget models, seeded by `cfg.seed`, with the run's one random stream."""
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    degrader = create_model("degrader", cfg.models.degrader).to(device)
    target = create_model("target", cfg.models.target, num_classes=num_actions,
                          in_channels=degrader.out_channels).to(device)
    n = len(data["train"][0])
    game = Game(cfg, data, device, num_identities, generator,
                batches(n, min(cfg.adversarial.batch_size, n), generator, drop_last=True, repeat=True),
                Trained(degrader, target, [], budget_model_names(cfg.budget)))
    game.out.budgets[:] = game.new_budgets(0)
    return game


@contextmanager
def _timed(game: Game, phase: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    game.out.seconds[phase] = time.perf_counter() - start


def reconstruct(game: Game) -> None:
    """Phase 1: L1 steps that make f_d reproduce its input (its grey level, for a 1-channel f_d)."""
    degrader, steps = game.degrader, game.cfg.pretrain.degrader_steps
    opt = torch.optim.Adam(degrader.parameters(), lr=game.cfg.adversarial.lr_degrader)
    degrader.train()
    # A quantised f_d reconstructs with its soft (pre-rounding) output: a binary image cannot
    # approximate grey levels, and the straight-through gradient of one would not find the
    # reconstruction; rounding the soft reconstruction then starts f_d as a thresholded image.
    quantised = getattr(degrader, "levels", 0)
    if quantised:
        degrader.quantise = False
    for i in range(steps):
        x = game.clip_batch(next(game.batches))
        step(F.l1_loss(degrader(x), _reference(x, degrader.out_channels)), [opt], f"degrader reconstruction step {i}")
    if quantised:
        degrader.quantise = True
    game.out.steps["degrader_init"] = steps


def _fit_kwargs(game: Game) -> dict:
    return dict(batch_size=game.cfg.adversarial.batch_size, seed=game.cfg.seed, device=game.device,
                patience=game.cfg.pretrain.patience)


def pretrain_target(game: Game) -> None:
    """Phase 2a: f_d + f_T trained on the action to their early stop on the validation split."""
    (clips, actions, _), (val_clips, val_actions, _) = game.data["train"], game.data["val"]
    fit = fit_classifier(nn.Sequential(game.degrader, game.target), (clips, actions), (val_clips, val_actions),
                         epochs=game.cfg.pretrain.target_epochs, lr=game.cfg.adversarial.lr_target, **_fit_kwargs(game))
    game.out.steps["target_pretrain_epochs"] = fit.epochs
    game.out.pretrain["target_val_acc"] = fit.val_accuracy


def fit_budgets(game: Game, epochs: int, lr: float) -> list:
    """Each budget model trained on the frozen f_d(X) for identity, to its early stop; their `FitResult`s.

    f_d is frozen here: both splits are degraded once (as the evaluation does) rather than every
    batch of every epoch of each of the M models.
    """
    (clips, _, ids), (val_clips, _, val_ids) = game.data["train"], game.data["val"]
    transform = frozen(game.degrader)
    train, val = degrade_split(transform, clips, game.device), degrade_split(transform, val_clips, game.device)
    return [fit_classifier(b, (train, ids), (val, val_ids), epochs=epochs, lr=lr,
                           train_frames=game.cfg.adversarial.budget_frames, **_fit_kwargs(game))
            for b in game.budgets]


def pretrain_budgets(game: Game) -> None:
    """Phase 2b: the M budget models trained to confidence on the pre-trained f_d before the game."""
    for i, fit in enumerate(fit_budgets(game, game.cfg.pretrain.budget_epochs, game.cfg.adversarial.lr_budget)):
        game.out.steps[f"budget_pretrain_epochs.{i}"] = fit.epochs
        game.out.pretrain[f"budget_val_acc.{i}"] = fit.val_accuracy


def start_adversarial(game: Game) -> None:
    """Fresh optimizers for the game (pre-training's are not carried over)."""
    adv = game.cfg.adversarial
    game.optimizers = {"degrader": torch.optim.Adam(game.degrader.parameters(), lr=adv.lr_degrader),
                       "target": torch.optim.Adam(game.target.parameters(), lr=adv.lr_target)}
    game.budget_optimizers = [torch.optim.Adam(b.parameters(), lr=adv.lr_budget) for b in game.budgets]


def privacy_step(game: Game, it: int) -> dict[str, float]:
    """Step a: f_d and f_T against the most confident budget model (frozen, in eval mode)."""
    adv = game.cfg.adversarial
    game.degrader.train()
    game.target.train()
    for b in game.budgets:
        b.eval().requires_grad_(False)
    idx = next(game.batches)
    x = game.clip_batch(idx)
    degraded = game.degrader(x)
    loss_target = F.cross_entropy(game.target(degraded), game.labels(idx, 1))
    seen = frame_subset(degraded, adv.budget_frames, game.generator)
    loss_privacy, chosen = privacy_loss([b(seen) for b in game.budgets], adv.privacy_loss)
    loss_l1 = F.l1_loss(degraded, _reference(x, game.degrader.out_channels))
    step(loss_target + adv.gamma * loss_privacy + adv.alpha * loss_l1,
         [game.optimizers["degrader"], game.optimizers["target"]], f"adversarial update of iteration {it}")
    for b in game.budgets:
        b.requires_grad_(True)
    game.totals["adversarial"] += 1
    return dict(loss_target=loss_target.item(), loss_privacy=loss_privacy.item(), loss_l1=loss_l1.item(),
                chosen_budget=chosen)


def target_val_acc(game: Game) -> float:
    """f_T's action accuracy on f_d(X_val) (its first `_VAL_CHECK_CLIPS` clips)."""
    val_clips, val_actions, _ = game.data["val"]
    check = slice(0, min(_VAL_CHECK_CLIPS, len(val_clips)))
    return accuracy(nn.Sequential(game.degrader, game.target), val_clips[check], val_actions[check])


def target_phase(game: Game, it: int) -> dict[str, float]:
    """Step b: keep f_T a strong competitor: L_T steps on f_T and f_d while its validation accuracy
    is ≤ threshold₁ (checked every `target_check_every` iterations; in between the last check stands)."""
    adv = game.cfg.adversarial
    if it == 1 or it % adv.target_check_every == 0:
        game.target_acc = target_val_acc(game)
    steps = 0
    if game.target_acc <= adv.target_threshold:
        game.degrader.train()
        game.target.train()
        for steps in range(1, adv.target_max_steps + 1):
            idx = next(game.batches)
            loss = F.cross_entropy(game.target(game.degrader(game.clip_batch(idx))), game.labels(idx, 1))
            step(loss, [game.optimizers["degrader"], game.optimizers["target"]], f"target phase of iteration {it}")
    game.totals["target"] += steps
    return dict(target_val_acc=game.target_acc, target_steps=steps)


def restart_budgets(game: Game, it: int) -> None:
    """Step d: all M budget models restart from fresh random weights (with fresh optimizers)."""
    game.out.budgets[:] = game.new_budgets(it // game.cfg.adversarial.restart_every)
    game.budget_optimizers = [torch.optim.Adam(b.parameters(), lr=game.cfg.adversarial.lr_budget)
                              for b in game.budgets]


def budget_phase(game: Game, it: int, cap: int) -> tuple[int, float]:
    """Step c: cross-entropy steps on every budget model until all exceed threshold₂ batch accuracy,
    or `cap` steps; returns (steps taken, the last batch accuracy of the weakest model).

    The accuracy is read from the logits of the step's own forward (before its update), so reaching
    the cap costs no extra forward of f_d and the M budget models just to report a number.
    """
    adv = game.cfg.adversarial
    for b in game.budgets:
        b.train()
    game.degrader.eval()
    accuracy_now = 0.0
    for steps in range(cap):
        idx = next(game.batches)
        with torch.no_grad():
            degraded = game.degrader(game.clip_batch(idx, adv.budget_frames))
        labels = game.labels(idx, 2)
        logits = [b(degraded) for b in game.budgets]
        accuracy_now = min((lg.argmax(1) == labels).float().mean().item() for lg in logits)
        if accuracy_now > adv.budget_threshold:
            return steps, accuracy_now
        loss = sum(F.cross_entropy(lg, labels) for lg in logits)
        step(loss, game.budget_optimizers, f"budget phase of iteration {it}")
    return cap, accuracy_now


def adversarial_iteration(game: Game, it: int) -> dict[str, float]:
    """One iteration of Algorithm 1 (steps a to d); its row of the history."""
    adv = game.cfg.adversarial
    row: dict[str, float] = {"iteration": it}
    row.update(privacy_step(game, it))
    row.update(target_phase(game, it))
    restart = adv.restart_every > 0 and it % adv.restart_every == 0
    if restart:
        restart_budgets(game, it)
    steps, budget_acc = budget_phase(game, it, adv.restart_max_steps if restart else adv.budget_max_steps)
    game.totals["restart" if restart else "budget"] += steps
    row.update(budget_train_acc=budget_acc, budget_steps=steps, restarted=float(restart))
    return row


def train_adversarial(
    cfg: RunConfig,
    data: SplitTensors,
    *,
    num_actions: int,
    num_identities: int,
    device: torch.device | None = None,
    progress: bool = False,
    on_iteration: Callable[[dict[str, float]], None] | None = None,
) -> Trained:
    """Run Algorithm 1 on `data` (uint8 clips) as configured by `cfg`; `on_iteration` gets each row."""
    keep_freed_memory()
    game = start_game(cfg, data, num_actions=num_actions, num_identities=num_identities,
                      device=device or default_device())
    with _timed(game, "degrader_init"):
        reconstruct(game)
    with _timed(game, "pretrain"):
        if cfg.pretrain.target_epochs:
            pretrain_target(game)
        if cfg.pretrain.budget_epochs:
            pretrain_budgets(game)
    with _timed(game, "adversarial"):
        start_adversarial(game)
        iterations = range(1, cfg.adversarial.iterations + 1)
        if progress:
            from tqdm import tqdm

            iterations = tqdm(iterations, desc="adversarial", unit="it")
        for it in iterations:
            row = adversarial_iteration(game, it)
            game.out.history.append(row)
            if on_iteration is not None:
                on_iteration(row)
    game.out.steps.update({f"{k}_steps": v for k, v in game.totals.items()})
    for module in (game.degrader, game.target, *game.budgets):
        module.eval()
    return game.out


def _reference(x: torch.Tensor, channels: int) -> torch.Tensor:
    """What f_d(X) is compared with in the L1 term: X itself, or its grey level for 1-channel f_d."""
    return x if channels == x.shape[1] else x.mean(dim=1, keepdim=True).expand(-1, channels, *x.shape[2:])
