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

The data are `RunData` (`raypriv.method.data.types`): a target pipeline (f_d + f_T on videos of
actions) and a privacy pipeline (f_d + f_b on the privacy labels). On SBU both are one data set, so
every phase draws one batch for both, as Algorithm 1 writes it. In the cross-dataset setting of
section 4.2 (UCF-101 videos + VISPR images) f_d is the only thing they share: the target phases
draw video batches, the budget phases image batches (an image is a one-frame clip), and step a
sums L_T on a video batch and γ · L_B on an image batch. Whether the budget models are multi-class
(softmax, accuracy) or multi-label (sigmoids, cMAP) is the privacy data's `Task`; the loop only
calls its loss and its score.

Every update goes through `raypriv.method.engine.step`, the one update rule.
"""

from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from raypriv.method.config import RunConfig
from raypriv.method.data.types import RunData, as_run_data
from raypriv.method.engine import (Batches, accuracy, all_sum, batch_score, default_device, degrade_split,
                                   fit_classifier, frame_subset, frozen, score, shard, step)
from raypriv.method.losses import privacy_floor, privacy_loss
from raypriv.method.models import budget_model_names, create_model
from raypriv.method.runtime import keep_freed_memory

# split -> (uint8 clips [N, 3, T, H, W], actions [N], identities [N]): one data set with both labels
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
    # pre-training's outcome: best validation accuracy of f_d + f_T (action) and best validation
    # score of each f_b (the privacy task's: identity accuracy, or attribute cMAP)
    pretrain: dict[str, float] = field(default_factory=dict)


@dataclass
class Game:
    """What Algorithm 1 carries from phase to phase: the three players, the data, one random stream."""

    cfg: RunConfig
    data: RunData
    device: torch.device
    generator: torch.Generator  # batch order and frame draws of every phase
    batches: Batches  # endless shuffled global training batches of the target pipeline
    # ... and of the privacy pipeline: the same object when one data set carries both labels
    privacy_batches: Batches
    out: Trained
    optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    budget_optimizers: list[torch.optim.Optimizer] = field(default_factory=list)
    target_acc: float = 0.0  # f_T's last validation check
    prior: torch.Tensor | None = None  # the privacy labels' training prevalence (multi-label), for L_B
    # update steps of each phase (restarts: epochs of re-training the budget models to strength)
    totals: dict[str, int] = field(default_factory=lambda: {"adversarial": 0, "target": 0, "budget": 0,
                                                            "restart_epochs": 0})

    @property
    def degrader(self) -> nn.Module:
        return self.out.degrader

    @property
    def target(self) -> nn.Module:
        return self.out.target

    @property
    def budgets(self) -> list[nn.Module]:
        return self.out.budgets

    def next_batch(self) -> torch.Tensor:
        """The next global training batch's indices of the target pipeline, this rank's share of them."""
        return shard(next(self.batches))

    def next_privacy_batch(self) -> torch.Tensor:
        """The next global training batch's indices of the privacy pipeline, this rank's share of them."""
        return shard(next(self.privacy_batches))

    def next_batches(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(target, privacy) batches of one step of f_d: one batch for both on one data set."""
        if self.data.shared:
            idx = self.next_batch()
            return idx, idx
        return self.next_batch(), self.next_privacy_batch()

    def clip_batch(self, idx: torch.Tensor, frames: int | None = None, pipeline: str = "target") -> torch.Tensor:
        """Training clips `idx` of a pipeline (`frames` random frames of each, all when None) as floats on the device."""
        clips = frame_subset(getattr(self.data, pipeline).clips("train")[idx], frames, self.generator)
        return clips.to(self.device).float().div_(255)

    def labels(self, idx: torch.Tensor, pipeline: str = "target") -> torch.Tensor:
        """Training labels of items `idx`: the target pipeline's actions or the privacy pipeline's labels."""
        return getattr(self.data, pipeline).labels("train")[idx].to(self.device)

    def new_budgets(self, round_: int) -> list[nn.Module]:
        """The M budget models with fresh weights, seeded by the run seed, the restart round and the index."""
        channels = self.degrader.out_channels
        models = []
        for i, name in enumerate(self.out.budget_names):
            torch.manual_seed(self.cfg.seed * 100_003 + round_ * 1_009 + i)
            models.append(create_model("budget", name, num_classes=self.data.privacy.num_classes,
                                       in_channels=channels).to(self.device))
        return models


def start_game(cfg: RunConfig, data: RunData, *, device: torch.device) -> Game:
    """Fresh f_d, f_T and M budget models, seeded by `cfg.seed`, with the run's one random stream."""
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    degrader = create_model("degrader", cfg.models.degrader).to(device)
    target = create_model("target", cfg.models.target, num_classes=data.target.num_classes,
                          in_channels=degrader.out_channels).to(device)

    def batches(n: int) -> Batches:
        return Batches(n, min(cfg.adversarial.batch_size, n), generator, drop_last=True, repeat=True)

    target_batches = batches(len(data.target.clips("train")))
    privacy_batches = target_batches if data.shared else batches(len(data.privacy.clips("train")))
    game = Game(cfg, data, device, generator, target_batches, privacy_batches,
                Trained(degrader, target, [], budget_model_names(cfg.budget)))
    game.out.budgets[:] = game.new_budgets(0)
    if data.privacy.task.name == "multilabel":
        game.prior = data.privacy.labels("train").float().mean(0).to(device)
    return game


@contextmanager
def _timed(game: Game, phase: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    game.out.seconds[phase] = game.out.seconds.get(phase, 0.0) + time.perf_counter() - start


def game_state(game: Game, iteration: int) -> dict:
    """Everything the game needs to go on after `iteration` exactly as it would have: the players'
    weights and optimizers, the random streams, the batch position and the record so far. Tensors
    and plain values only (`torch.load(..., weights_only=True)` reads it back)."""
    models = {"degrader": game.degrader, "target": game.target, **{f"budget.{i}": b for i, b in enumerate(game.budgets)}}
    optimizers = {**game.optimizers, **{f"budget.{i}": o for i, o in enumerate(game.budget_optimizers)}}
    return copy.deepcopy({  # a snapshot: state dicts share storage with the live tensors
        "iteration": iteration,
        "budget_names": list(game.out.budget_names),
        "models": {k: m.state_dict() for k, m in models.items()},
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "rng": {"generator": game.generator.get_state(), "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        "batches": game.batches.state_dict(),
        "privacy_batches": game.privacy_batches.state_dict(),
        "target_acc": game.target_acc,
        "totals": dict(game.totals),
        "record": {"history": list(game.out.history), "steps": dict(game.out.steps),
                   "seconds": dict(game.out.seconds), "pretrain": dict(game.out.pretrain)},
    })


def restore_game(game: Game, state: dict) -> int:
    """Load `game_state` into a started game (optimizers included); returns the iteration it ended."""
    if state["budget_names"] != game.out.budget_names:
        raise ValueError(f"the checkpoint's budget models {state['budget_names']} are not this run's "
                         f"{game.out.budget_names}: it belongs to another configuration")
    game.degrader.load_state_dict(state["models"]["degrader"])
    game.target.load_state_dict(state["models"]["target"])
    for i, b in enumerate(game.budgets):
        b.load_state_dict(state["models"][f"budget.{i}"])
        game.budget_optimizers[i].load_state_dict(state["optimizers"][f"budget.{i}"])
    for name, opt in game.optimizers.items():
        opt.load_state_dict(state["optimizers"][name])
    game.generator.set_state(state["rng"]["generator"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"]:
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    game.batches.load_state_dict(state["batches"])
    game.privacy_batches.load_state_dict(state.get("privacy_batches", state["batches"]))
    game.target_acc = float(state["target_acc"])
    game.totals.update(state["totals"])
    record = state["record"]
    game.out.history[:] = record["history"]
    for field_name in ("steps", "seconds", "pretrain"):
        getattr(game.out, field_name).update(record[field_name])
    return int(state["iteration"])


def reconstruct(game: Game) -> None:
    """Phase 1: L1 steps that make f_d reproduce its input (its grey level, for a 1-channel f_d)."""
    degrader, steps = game.degrader, game.cfg.pretrain.degrader_steps
    opt = torch.optim.Adam(degrader.parameters(), lr=game.cfg.pretrain.lr)
    degrader.train()
    # A quantised f_d reconstructs with its soft (pre-rounding) output: a binary image cannot
    # approximate grey levels, and the straight-through gradient of one would not find the
    # reconstruction; rounding the soft reconstruction then starts f_d as a thresholded image.
    quantised = getattr(degrader, "levels", 0)
    if quantised:
        degrader.quantise = False
    for i in range(steps):
        x = game.clip_batch(game.next_batch())
        step(F.l1_loss(degrader(x), _reference(x, degrader.out_channels)), [opt], f"degrader reconstruction step {i}")
    if quantised:
        degrader.quantise = True
    game.out.steps["degrader_init"] = steps


def _fit_kwargs(game: Game) -> dict:
    return dict(batch_size=game.cfg.adversarial.batch_size, seed=game.cfg.seed, device=game.device,
                patience=game.cfg.pretrain.patience)


def pretrain_target(game: Game) -> None:
    """Phase 2a: f_d + f_T trained on the action to their early stop on the validation split."""
    target = game.data.target
    fit = fit_classifier(nn.Sequential(game.degrader, game.target), target.splits["train"], target.splits["val"],
                         epochs=game.cfg.pretrain.target_epochs, lr=game.cfg.pretrain.lr, **_fit_kwargs(game))
    game.out.steps["target_pretrain_epochs"] = fit.epochs
    game.out.pretrain["target_val_acc"] = fit.val_score


def fit_budgets(game: Game, epochs: int, lr: float) -> list:
    """Each budget model trained on the frozen f_d(X) for the privacy task, to its early stop; their
    `FitResult`s.

    f_d is frozen here: both splits are degraded once (as the evaluation does) rather than every
    batch of every epoch of each of the M models.
    """
    privacy = game.data.privacy
    transform = frozen(game.degrader)
    train, val = (degrade_split(transform, privacy.clips(s), game.device) for s in ("train", "val"))
    return [fit_classifier(b, (train, privacy.labels("train")), (val, privacy.labels("val")), epochs=epochs, lr=lr,
                           train_frames=game.cfg.adversarial.budget_frames, task=privacy.task, **_fit_kwargs(game))
            for b in game.budgets]


def pretrain_budgets(game: Game) -> None:
    """Phase 2b: the M budget models trained to confidence on the pre-trained f_d before the game."""
    for i, fit in enumerate(fit_budgets(game, game.cfg.pretrain.budget_epochs, game.cfg.adversarial.lr_budget)):
        game.out.steps[f"budget_pretrain_epochs.{i}"] = fit.epochs
        game.out.pretrain[f"budget_val_acc.{i}"] = fit.val_score


def start_adversarial(game: Game) -> None:
    """Fresh optimizers for the game (pre-training's are not carried over)."""
    adv = game.cfg.adversarial
    game.optimizers = {"degrader": torch.optim.Adam(game.degrader.parameters(), lr=adv.lr_degrader),
                       "target": torch.optim.Adam(game.target.parameters(), lr=adv.lr_target)}
    game.budget_optimizers = [torch.optim.Adam(b.parameters(), lr=adv.lr_budget) for b in game.budgets]


def privacy_step(game: Game, it: int) -> dict[str, float]:
    """Step a: f_d (and f_T with `privacy_trains_target`) against the most confident budget model
    (frozen, in eval mode), `privacy_steps` times; the last step's losses."""
    adv = game.cfg.adversarial
    game.degrader.train()
    game.target.train()
    for b in game.budgets:
        b.eval().requires_grad_(False)
    optimizers = [game.optimizers["degrader"]] + ([game.optimizers["target"]] if adv.privacy_trains_target else [])
    for _ in range(adv.privacy_steps):
        idx, privacy_idx = game.next_batches()
        x = game.clip_batch(idx)
        degraded = game.degrader(x)
        loss_target = F.cross_entropy(game.target(degraded), game.labels(idx))
        seen = frame_subset(_degraded_privacy(game, privacy_idx, degraded), adv.budget_frames, game.generator)
        loss_privacy, chosen = privacy_loss([b(seen) for b in game.budgets], adv.privacy_loss, adv.ensemble_max,
                                            choose=lambda means: int(torch.tensor(all_sum(means.tolist())).argmax()),
                                            prior=game.prior)
        loss_l1 = F.l1_loss(degraded, _reference(x, game.degrader.out_channels))
        loss = step(loss_target + adv.gamma * loss_privacy + adv.alpha * loss_l1, optimizers,
                    f"adversarial update of iteration {it}")
    for b in game.budgets:
        b.requires_grad_(True)
    game.totals["adversarial"] += adv.privacy_steps
    # `loss` is f_d's whole objective over the global batch (all ranks); the parts are this rank's
    return dict(loss=loss, loss_target=loss_target.item(), loss_privacy=loss_privacy.item(), loss_l1=loss_l1.item(),
                chosen_budget=chosen)


def _degraded_privacy(game: Game, idx: torch.Tensor, degraded_target: torch.Tensor) -> torch.Tensor:
    """f_d(X) of the privacy pipeline's batch `idx`: the target batch's f_d(X) itself on one data set."""
    if game.data.shared:
        return degraded_target
    return game.degrader(game.clip_batch(idx, pipeline="privacy"))


def target_val_acc(game: Game) -> float:
    """f_T's action accuracy on f_d(X_val) (its first `_VAL_CHECK_CLIPS` clips)."""
    val_clips, val_actions = game.data.target.splits["val"]
    check = slice(0, min(_VAL_CHECK_CLIPS, len(val_clips)))
    return accuracy(nn.Sequential(game.degrader, game.target), val_clips[check], val_actions[check])


def target_threshold(game: Game) -> float:
    """threshold1: absolute, or a fraction of f_T's pre-trained validation accuracy."""
    adv = game.cfg.adversarial
    if adv.target_threshold_of == "pretrained":
        return adv.target_threshold * game.out.pretrain.get("target_val_acc", 1.0)
    return adv.target_threshold


def target_phase(game: Game, it: int) -> dict[str, float]:
    """Step b: keep f_T a strong competitor: L_T steps on f_T and f_d while its validation accuracy
    is ≤ threshold₁ (checked every `target_check_every` iterations; in between the last check stands)."""
    adv = game.cfg.adversarial
    if it == 1 or it % adv.target_check_every == 0:
        game.target_acc = target_val_acc(game)
    steps = 0
    if game.target_acc <= target_threshold(game):
        game.degrader.train()
        game.target.train()
        for steps in range(1, adv.target_max_steps + 1):
            idx = game.next_batch()
            loss = F.cross_entropy(game.target(game.degrader(game.clip_batch(idx))), game.labels(idx))
            step(loss, [game.optimizers["degrader"], game.optimizers["target"]], f"target phase of iteration {it}")
    game.totals["target"] += steps
    return dict(target_val_acc=game.target_acc, target_steps=steps)


def restart_budgets(game: Game, it: int) -> None:
    """Step d: all M budget models restart from fresh random weights (fresh optimizers too) and are
    trained to strength on the current f_d(X) (`pretrain.budget_epochs`, to their early stop), as
    the paper's restart does before the game resumes."""
    game.out.budgets[:] = game.new_budgets(it // game.cfg.adversarial.restart_every)
    game.budget_optimizers = [torch.optim.Adam(b.parameters(), lr=game.cfg.adversarial.lr_budget)
                              for b in game.budgets]
    fits = fit_budgets(game, game.cfg.pretrain.budget_epochs, game.cfg.adversarial.lr_budget)
    game.totals["restart_epochs"] += sum(f.epochs for f in fits)


def budget_val_acc(game: Game) -> float:
    """The strongest budget model's validation score on f_d(X_val) (identity accuracy, or attribute
    cMAP), from `budget_frames` evenly spaced frames of each clip (no random draw: the check leaves
    the run's random stream alone)."""
    privacy = game.data.privacy
    clips, labels = privacy.splits["val"]
    frames, t = game.cfg.adversarial.budget_frames, clips.shape[2]
    keep = torch.linspace(0, t - 1, min(frames or t, t)).round().long()
    transform = frozen(game.degrader)
    return max(score(b, clips[:, :, keep], labels, task=privacy.task, transform=transform) for b in game.budgets)


def budget_phase(game: Game, it: int, cap: int) -> tuple[int, float]:
    """Step c: steps of the privacy task's loss on every budget model (cross-entropy, or binary
    cross-entropy for attributes) until all exceed threshold₂ on the batch (accuracy, or cMAP), or
    `cap` steps; returns (steps taken, the last batch score of the weakest model).

    The score is read from the logits of the step's own forward (before its update), so reaching
    the cap costs no extra forward of f_d and the M budget models just to report a number.
    """
    adv, task = game.cfg.adversarial, game.data.privacy.task
    for b in game.budgets:
        b.train()
    game.degrader.eval()
    score_now = 0.0
    for steps in range(cap):
        idx = game.next_privacy_batch()
        with torch.no_grad():
            degraded = game.degrader(game.clip_batch(idx, adv.budget_frames, "privacy"))
        labels = game.labels(idx, "privacy")
        logits = [b(degraded) for b in game.budgets]
        score_now = min(batch_score(task, lg, labels, game.privacy_batches.batch_size) for lg in logits)
        if score_now > adv.budget_threshold:
            return steps, score_now
        loss = sum(task.loss(lg, labels) for lg in logits)
        step(loss, game.budget_optimizers, f"budget phase of iteration {it}")
    return cap, score_now


def adversarial_iteration(game: Game, it: int) -> dict[str, float]:
    """One iteration of Algorithm 1 (steps a to d); its row of the history."""
    adv = game.cfg.adversarial
    row: dict[str, float] = {"iteration": it}
    row.update(privacy_step(game, it))
    row.update(target_phase(game, it))
    restart = adv.restart_every > 0 and it % adv.restart_every == 0
    if restart:
        restart_budgets(game, it)
    row["budget_val_acc"] = budget_val_acc(game)
    steps, budget_acc = budget_phase(game, it, 0 if row["budget_val_acc"] > adv.budget_threshold
                                     else adv.budget_max_steps)
    game.totals["budget"] += steps
    privacy, target = game.totals["adversarial"], game.totals["target"]
    row.update(budget_train_acc=budget_acc, budget_steps=steps, restarted=float(restart),
               privacy_floor=privacy_floor(adv.privacy_loss, game.data.privacy.num_classes),
               privacy_share=privacy / max(1, privacy + target))
    return row


def train_adversarial(
    cfg: RunConfig,
    data: RunData | SplitTensors,
    *,
    num_actions: int | None = None,
    num_identities: int | None = None,
    device: torch.device | None = None,
    progress: bool = False,
    on_iteration: Callable[[dict[str, float]], None] | None = None,
    resume: dict | None = None,
    on_checkpoint: Callable[[dict], None] | None = None,
) -> Trained:
    """Run Algorithm 1 on `data` (uint8 clips) as configured by `cfg`; `on_iteration` gets each row.

    `data` is `RunData`, or one data set's split -> (clips, actions, identities) with its class
    counts `num_actions` / `num_identities` (default: 1 + the largest label).

    `on_checkpoint(state)` receives a `game_state` after pre-training and every
    `adversarial.checkpoint_every` iterations; `resume` (such a state) continues a run from it.
    """
    keep_freed_memory()
    game = start_game(cfg, as_run_data(data, num_actions, num_identities), device=device or default_device())
    if resume is None:
        with _timed(game, "degrader_init"):
            reconstruct(game)
        with _timed(game, "pretrain"):
            if cfg.pretrain.target_epochs:
                pretrain_target(game)
            if cfg.pretrain.budget_epochs:
                pretrain_budgets(game)
        start_adversarial(game)
        done = 0
        if on_checkpoint is not None:
            on_checkpoint(game_state(game, 0))
    else:
        start_adversarial(game)  # the optimizers exist before their states are loaded
        done = restore_game(game, resume)
    _play(game, done, progress=progress, on_iteration=on_iteration, on_checkpoint=on_checkpoint)
    game.out.steps.update({k if k.endswith("epochs") else f"{k}_steps": v for k, v in game.totals.items()})
    for module in (game.degrader, game.target, *game.budgets):
        module.eval()
    return game.out


def _play(game: Game, done: int, *, progress: bool, on_iteration, on_checkpoint) -> None:
    """The adversarial iterations after `done`, with a checkpoint every `checkpoint_every` of them."""
    adv = game.cfg.adversarial
    every = adv.checkpoint_every or max(1, adv.iterations // 10)
    with _timed(game, "adversarial"):
        iterations = range(done + 1, adv.iterations + 1)
        if progress:
            from tqdm import tqdm

            iterations = tqdm(iterations, desc="adversarial", unit="it", initial=done, total=adv.iterations)
        for it in iterations:
            row = adversarial_iteration(game, it)
            game.out.history.append(row)
            if on_iteration is not None:
                on_iteration(row)
            if on_checkpoint is not None and it % every == 0 and it < adv.iterations:
                on_checkpoint(game_state(game, it))


def _reference(x: torch.Tensor, channels: int) -> torch.Tensor:
    """What f_d(X) is compared with in the L1 term: X itself, or its grey level for 1-channel f_d."""
    return x if channels == x.shape[1] else x.mean(dim=1, keepdim=True).expand(-1, channels, *x.shape[2:])
