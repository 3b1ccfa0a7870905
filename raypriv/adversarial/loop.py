"""THE training loop: Algorithm 1 of Wu et al. (appendix A), with budget-model ensemble and restarting.

Phases, in order (each step goes through `raypriv.evaluation.fit.step`, the one update rule):

1. f_d is initialised as a reconstruction of its input (`pretrain.degrader_steps` L1 steps).
2. f_T is pre-trained jointly with f_d on the action, then each of the M budget models f_b is
   pre-trained on the frozen f_d(X) for identity, to convergence (`fit_classifier`, the same
   helper that fits the evaluation's attackers). With `pretrain.target_candidates` K > 1, f_d + f_T
   are pre-trained K times from the one reconstruction and the best on validation is kept.
3. Every adversarial iteration:
   a. f_d and f_T take one step on `L_T + γ · max_i L_B(f_b^i(f_d(X))) + α · |f_d(X) − X|₁`, with
      the budget models frozen in eval mode (the max picks the most confident one);
   b. if f_T's validation accuracy ≤ threshold1, f_T and f_d take up to `target_max_steps`
      steps on L_T;
   c. the budget models take cross-entropy steps on Y_B until their batch accuracy exceeds
      threshold2, at most `budget_max_steps` (the original code's loops had no cap);
   d. every R = `restart_every` iterations, all M budget models restart from fresh random
      weights and are trained on the current f_d(X) until threshold2 (at most
      `restart_max_steps` steps) before the adversarial updates resume.
4. With `final_target_max_steps` > 0, the game ends on step b run to threshold1 (at most that many
   L_T steps), as the original's unbounded loop would end the last iteration.
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from raypriv.adversarial.losses import privacy_loss
from raypriv.config import BudgetConfig, RunConfig
from raypriv.evaluation.fit import (accuracy, default_device, degrade_split, fit_classifier, frame_subset, frozen,
                                    step)
from raypriv.models import BUDGETS, create_model
from raypriv.runtime import keep_freed_memory

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


def select_budget_models(cfg: BudgetConfig) -> list[str]:
    """The M budget-model names: `models` cycled, or sampled with `seed` from `families`."""
    if cfg.policy == "cycle":
        return [cfg.models[i % len(cfg.models)] for i in range(cfg.count)]
    pool = sorted(name for family in cfg.families for name in BUDGETS.names(family=family, include_tiny=False))
    pool = pool or sorted(name for family in cfg.families for name in BUDGETS.names(family=family))
    rng = random.Random(cfg.seed)
    # Every architecture once before any repeats, so M >= pool size uses the whole pool.
    names: list[str] = []
    while len(names) < cfg.count:
        names += rng.sample(pool, min(len(pool), cfg.count - len(names)))
    return names


def _batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    while True:
        order = torch.randperm(n, generator=generator)
        for lo in range(0, n - batch_size + 1, batch_size):
            yield order[lo : lo + batch_size]


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
    """Run Algorithm 1 on `data` (uint8 clips) as configured by `cfg`."""
    keep_freed_memory()
    device = device or default_device()
    adv, pre = cfg.adversarial, cfg.pretrain
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    train_clips, train_actions, train_ids = data["train"]
    val_clips, val_actions, val_ids = data["val"]

    degrader = create_model("degrader", cfg.models.degrader).to(device)
    channels = degrader.out_channels
    target = create_model("target", cfg.models.target, num_classes=num_actions, in_channels=channels).to(device)
    budget_names = select_budget_models(cfg.budget)

    def new_budgets(round_: int) -> list[nn.Module]:
        models = []
        for i, name in enumerate(budget_names):
            torch.manual_seed(cfg.seed * 100_003 + round_ * 1_009 + i)  # fresh weights each restart
            models.append(create_model("budget", name, num_classes=num_identities, in_channels=channels).to(device))
        return models

    budgets = new_budgets(0)
    result = Trained(degrader, target, budgets, budget_names)
    batches = _batches(len(train_clips), min(adv.batch_size, len(train_clips)), generator)

    def clip_batch(idx: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        clips = train_clips[idx]
        clips = frame_subset(clips, frames, generator)
        return clips.to(device).float().div_(255)

    # 1. f_d starts as (a reconstruction of) the identity map.
    start = time.perf_counter()
    opt_d = torch.optim.Adam(degrader.parameters(), lr=adv.lr_degrader)
    degrader.train()
    # A quantised f_d reconstructs with its soft (pre-rounding) output: a binary image cannot
    # approximate grey levels, and the straight-through gradient of one would not find the
    # reconstruction; rounding the soft reconstruction then starts f_d as a thresholded image.
    quantised = getattr(degrader, "levels", 0)
    if quantised:
        degrader.quantise = False
    for i in range(pre.degrader_steps):
        x = clip_batch(next(batches))
        step(F.l1_loss(degrader(x), _reference(x, channels)), [opt_d], f"degrader reconstruction step {i}")
    if quantised:
        degrader.quantise = True
    result.steps["degrader_init"] = pre.degrader_steps
    result.seconds["degrader_init"] = time.perf_counter() - start

    # 2. f_T jointly with f_d on the action; then each f_b on the frozen f_d(X), to convergence.
    start = time.perf_counter()
    fit_kwargs = dict(batch_size=adv.batch_size, seed=cfg.seed, device=device, patience=pre.patience)
    if pre.target_epochs:
        _pretrain_target(degrader, target, cfg, data, num_actions, result, fit_kwargs)
    if pre.budget_epochs:
        # f_d is frozen here: degrade both splits once (as the evaluation does) rather than every
        # batch of every epoch of each of the M models.
        degraded = {name: degrade_split(frozen(degrader), clips, device)
                    for name, clips in (("train", train_clips), ("val", val_clips))}
        for i, budget in enumerate(budgets):
            fit = fit_classifier(budget, (degraded["train"], train_ids), (degraded["val"], val_ids),
                                 epochs=pre.budget_epochs, lr=adv.lr_budget, train_frames=adv.budget_frames,
                                 **fit_kwargs)
            result.steps[f"budget_pretrain_epochs.{i}"] = fit.epochs
            result.pretrain[f"budget_val_acc.{i}"] = fit.val_accuracy
        del degraded
    result.seconds["pretrain"] = time.perf_counter() - start

    # 3. The adversarial game.
    start = time.perf_counter()
    opt_d = torch.optim.Adam(degrader.parameters(), lr=adv.lr_degrader)
    opt_t = torch.optim.Adam(target.parameters(), lr=adv.lr_target)
    opt_b = [torch.optim.Adam(b.parameters(), lr=adv.lr_budget) for b in budgets]
    val_check = slice(0, min(_VAL_CHECK_CLIPS, len(val_clips)))

    def target_val_acc() -> float:
        return accuracy(nn.Sequential(degrader, target), val_clips[val_check], val_actions[val_check])

    def target_step(where: str) -> None:  # one L_T step on f_d + f_T (step b and the final phase)
        idx = next(batches)
        loss = F.cross_entropy(target(degrader(clip_batch(idx))), train_actions[idx].to(device))
        step(loss, [opt_d, opt_t], where)

    totals = {"adversarial": 0, "target": 0, "budget": 0, "restart": 0}
    iterations = range(1, adv.iterations + 1)
    if progress:
        from tqdm import tqdm

        iterations = tqdm(iterations, desc="adversarial", unit="it")
    for it in iterations:
        row: dict[str, float] = {"iteration": it}
        # a. f_d (and f_T) against the most confident budget model.
        degrader.train()
        target.train()
        for b in budgets:
            b.eval().requires_grad_(False)
        idx = next(batches)
        x = clip_batch(idx)
        degraded = degrader(x)
        loss_target = F.cross_entropy(target(degraded), train_actions[idx].to(device))
        seen = frame_subset(degraded, adv.budget_frames, generator)
        loss_privacy, chosen = privacy_loss([b(seen) for b in budgets], adv.privacy_loss)
        loss_l1 = F.l1_loss(degraded, _reference(x, channels))
        step(loss_target + adv.gamma * loss_privacy + adv.alpha * loss_l1, [opt_d, opt_t],
             f"adversarial update of iteration {it}")
        for b in budgets:
            b.requires_grad_(True)
        totals["adversarial"] += 1
        row.update(loss_target=loss_target.item(), loss_privacy=loss_privacy.item(), loss_l1=loss_l1.item(),
                   chosen_budget=chosen)

        # b. keep f_T a strong competitor: L_T steps while its validation accuracy <= threshold1
        # (checked every `target_check_every` iterations; in between the last check stands).
        if it == 1 or it % adv.target_check_every == 0:
            target_acc = target_val_acc()
        steps_t = 0
        if target_acc <= adv.target_threshold:
            degrader.train()
            target.train()
            for steps_t in range(1, adv.target_max_steps + 1):
                target_step(f"target phase of iteration {it}")
        totals["target"] += steps_t
        row.update(target_val_acc=target_acc, target_steps=steps_t)

        # c./d. keep the budget models strong; restart them from random weights every R iterations.
        restart = adv.restart_every > 0 and it % adv.restart_every == 0
        if restart:
            budgets[:] = new_budgets(it // adv.restart_every)
            opt_b = [torch.optim.Adam(b.parameters(), lr=adv.lr_budget) for b in budgets]
        cap = adv.restart_max_steps if restart else adv.budget_max_steps
        steps_b, budget_acc = _train_budgets(budgets, opt_b, degrader, batches,
                                             lambda idx: clip_batch(idx, adv.budget_frames), train_ids, device,
                                             adv.budget_threshold, cap, f"budget phase of iteration {it}")
        totals["restart" if restart else "budget"] += steps_b
        row.update(budget_train_acc=budget_acc, budget_steps=steps_b, restarted=float(restart))
        result.history.append(row)
        if on_iteration is not None:
            on_iteration(row)
    # e. the game ends on f_T's phase run to threshold1, as Algorithm 1's unbounded while loop
    # would end an iteration (bounded here): an f_d stopped in a trough of the action keeps it.
    steps_f, check_every = 0, max(1, adv.target_max_steps)
    if adv.iterations and adv.final_target_max_steps:
        while target_val_acc() <= adv.target_threshold and steps_f < adv.final_target_max_steps:
            degrader.train()
            target.train()
            for _ in range(min(check_every, adv.final_target_max_steps - steps_f)):
                steps_f += 1
                target_step(f"final target phase, step {steps_f}")
        totals["final_target"] = steps_f
    result.steps.update({f"{k}_steps": v for k, v in totals.items()})
    result.seconds["adversarial"] = time.perf_counter() - start
    for module in (degrader, target, *budgets):
        module.eval()
    return result


def _pretrain_target(degrader: nn.Module, target: nn.Module, cfg: RunConfig, data: SplitTensors,
                     num_actions: int, result: Trained, fit_kwargs: dict) -> None:
    """Pre-train f_d + f_T on the action `pretrain.target_candidates` times, keep the best on val.

    Candidate 0 trains `degrader` and `target` in place, exactly as a single pre-training would;
    candidate k > 0 starts from the same reconstructed f_d with its own f_T initialisation and
    batch order, inside a forked RNG, so the rest of the run sees the same random stream whichever
    candidate wins. The winner's weights end up in `degrader` and `target`.
    """
    pre = cfg.pretrain
    train = data["train"][0], data["train"][1]
    val = data["val"][0], data["val"][1]
    reconstructed = copy.deepcopy(degrader) if pre.target_candidates > 1 else None
    lr, device = cfg.adversarial.lr_target, fit_kwargs["device"]
    fit = fit_classifier(nn.Sequential(degrader, target), train, val, epochs=pre.target_epochs, lr=lr, **fit_kwargs)
    best, epochs = (0, fit.val_accuracy), fit.epochs
    if pre.target_candidates > 1:
        result.pretrain["target_val_acc.0"] = fit.val_accuracy
    for k in range(1, pre.target_candidates):
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(cfg.seed * 100_019 + k)
            d_k = copy.deepcopy(reconstructed)
            t_k = create_model("target", cfg.models.target, num_classes=num_actions,
                               in_channels=degrader.out_channels).to(device)
            fit = fit_classifier(nn.Sequential(d_k, t_k), train, val, epochs=pre.target_epochs, lr=lr,
                                 **{**fit_kwargs, "seed": cfg.seed * 100_019 + k})
        result.pretrain[f"target_val_acc.{k}"] = fit.val_accuracy
        epochs += fit.epochs
        if fit.val_accuracy > best[1]:
            best = (k, fit.val_accuracy)
            degrader.load_state_dict(d_k.state_dict())
            target.load_state_dict(t_k.state_dict())
    result.steps["target_pretrain_epochs"] = epochs
    result.steps["target_pretrain_candidate"] = best[0]
    result.pretrain["target_val_acc"] = best[1]


def _train_budgets(budgets, optimizers, degrader, batches, clip_batch, identities, device, threshold, cap, where):
    """Cross-entropy steps on every budget model until all exceed `threshold` batch accuracy, or `cap`.

    The accuracy is read from the logits of the step's own forward (before its update), so reaching
    the cap costs no extra forward of f_d and the M budget models just to report a number.
    """
    for b in budgets:
        b.train()
    degrader.eval()
    accuracy_now = 0.0
    for steps in range(cap):
        idx = next(batches)
        with torch.no_grad():
            degraded = degrader(clip_batch(idx))
        labels = identities[idx].to(device)
        logits = [b(degraded) for b in budgets]
        accuracy_now = min((lg.argmax(1) == labels).float().mean().item() for lg in logits)
        if accuracy_now > threshold:
            return steps, accuracy_now
        loss = sum(F.cross_entropy(lg, labels) for lg in logits)
        step(loss, optimizers, where)
    return cap, accuracy_now


def _reference(x: torch.Tensor, channels: int) -> torch.Tensor:
    """What f_d(X) is compared with in the L1 term: X itself, or its grey level for 1-channel f_d."""
    return x if channels == x.shape[1] else x.mean(dim=1, keepdim=True).expand(-1, channels, *x.shape[2:])
