"""The two-fold evaluation protocol of Wu et al. (section 3.4): how a degrader f_d is judged.

1. A_T: the action accuracy of the target model f_T on f_d(X_test). Reported twice: for the f_T
   trained with f_d (when there is one) and for a *fresh* f_T trained from scratch on the frozen
   f_d(X_train), which is what a cloud that only ever sees f_d(X) could reach.
2. A_B^N: the highest identity accuracy among N fresh attackers f_b^j, each trained from scratch on
   f_d(X_train) (early-stopped on f_d(X_val)) and tested on f_d(X_test). The attackers are drawn
   from families *never* used as budget models during training (the paper's answer to the "∀
   challenge"); the evaluator refuses an overlap rather than reporting a flattering number.

In the cross-dataset setting (section 4.2) fold 1 runs on the task set's videos (UCF-101) and fold
2 on the privacy set's images (VISPR): the attackers are multi-label, trained with binary
cross-entropy and judged by cMAP (`raypriv.method.tasks.MULTILABEL`), and the privacy score is the
highest cMAP among them; its chance level is the attributes' mean prevalence in the test split.
`privacy_acc` stays "the privacy score, lower is better" whatever it measures (`privacy_metric`
says which), so sweeps and reports compare runs of either setting the same way. The video attacker
reads identity from whole clips; it does not apply to an image privacy set and is refused there.

Besides the frame-averaged 2-D attackers of the budget zoo, a video-level 3-D CNN reads identity
from the whole clip: on the prototype it was the strongest attacker of all (FACTS.md).

Every model is trained with `raypriv.method.engine.fit_classifier`. The frozen f_d runs once over
every split and its output is kept as float16 (f_d is deterministic and frozen, so this is the
same input the attackers would see batch by batch, minus 8 forward passes of f_d per epoch per
model). Frame-level attackers may train on a few random frames per clip (`train_frames`), which
cuts their cost without limiting what they can learn: they are tested on every frame.
"""

from __future__ import annotations

import os
import random
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Callable, Iterator, Mapping

import torch
import torch.distributed as dist
import torch.nn as nn

from raypriv.method.data import SPLITS
from raypriv.method.data.types import RunData, as_run_data
from raypriv.method.engine import (Transform, accuracy, alone, default_device, degrade_split, fit_classifier, frozen,
                                   score, world)
from raypriv.method.tasks import Task
from raypriv.method.models import BUDGETS, TARGETS, ModelSpec, create_model, list_models
from raypriv.method.models.budget import build_small_cnn, build_torchvision
from raypriv.method.runtime import die_with_parent, keep_freed_memory

Degrader = Callable[[torch.Tensor], torch.Tensor]
# split -> (uint8 clips [N, 3, T, H, W], action labels [N], identity labels [N])
SplitData = Mapping[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]

# Attackers in order of preference: cheap to train on a CPU yet strong. Seconds per training epoch
# on the laptop preset (624 clips of 12x48x48, batch 32, one thread): smallcnn_d2_w16 9,
# smallcnn_d3_w16 12, plaincnn_d3_w32 24, smallcnn_d3_w32 32, mobilenet_v3_small_075 37,
# shufflenet_v2_x0_5 71, mnasnet0_5 / regnet_x_400mf ~100, mobilenet_v2_035 123, efficientnet_b0
# 330; the torchvision models are slow because their stem runs at stride 1 on small frames. BN
# CNNs trained from scratch were the strong attackers on the prototype; the no-BN one was weak and
# learns slowly (it ran all 25 epochs on raw laptop clips, 905 s, for 84 %; 7.7 % = chance on the
# learned quick f_d), so it comes late, kept for its different inductive bias. regnet_x_400mf
# comes early despite its cost: it is the worst attacker of the quick profile's f_d on every seed
# measured (results/tradeoff.csv). Names not listed rank after these, alphabetically.
_ATTACKER_PREFERENCE = (
    "smallcnn_d3_w16",
    "mobilenet_v3_small_075",
    "shufflenet_v2_x0_5",
    "regnet_x_400mf",
    "smallcnn_d3_w32",
    "smallcnn_d2_w16",
    "mobilenet_v3_small_100",
    "mobilenet_v2_035",
    "plaincnn_d3_w32",
    "mnasnet0_5",
    "smallcnn_d4_w64",
    "regnet_y_400mf",
    "mobilenet_v2_050",
    "shufflenet_v2_x1_0",
    "efficientnet_b0",
    "mobilenet_v3_large_100",
    "mobilenet_v2_100",
    "squeezenet1_1",
    "resnet18",
    "resnet34",
    "densenet121",
)
# With a seed other than 0, each rank is perturbed by up to this many places, so repeated
# evaluations can draw different but still cheap attacker sets.
_SEED_JITTER = 3.0


@dataclass(frozen=True)
class TwoFoldResult:
    """The two folds of one evaluation; accuracies (and cMAPs) are fractions in [0, 1]."""

    target_acc: float  # A_T: the given f_T on f_d(X_test) (= target_acc_fresh when none is given)
    target_acc_fresh: float  # a fresh f_T trained on frozen f_d(X_train), tested on f_d(X_test)
    # The privacy score, lower is better: A_B^N, the best of the N fresh attackers' accuracy, or for
    # a multi-label privacy task their best cMAP (`privacy_metric` says which)
    privacy_acc: float
    privacy_per_attacker: dict[str, float]
    worst_attacker: str  # the attacker that reached privacy_acc (the worst case for privacy)
    chance_target: float
    chance_privacy: float
    seconds: float
    # per trained model (the attackers and "target_fresh"): epochs run, the epoch whose weights were
    # tested (best validation accuracy) and wall seconds; best_epoch == epochs at the epoch cap
    # means the model was still improving when it stopped
    fits: dict[str, dict[str, float]]
    privacy_metric: str = "accuracy"  # what privacy_acc and privacy_per_attacker measure: accuracy | cmap
    privacy_cmap: float | None = None  # privacy_acc again when it is a cMAP, else None

    def as_dict(self) -> dict:
        return asdict(self)


def _known_families(families: set[str] | frozenset[str]) -> set[str]:
    """`families` as a set, refusing names no registry knows (a typo would let an overlap slip)."""
    known = set(BUDGETS.families()) | set(TARGETS.families())
    unknown = set(families) - known
    if unknown:
        raise ValueError(f"unknown model families {sorted(unknown)}; known families: {', '.join(sorted(known))}")
    return set(families)


def _is_bn_small_cnn(spec: ModelSpec) -> bool:
    return spec.builder is build_small_cnn and spec.defaults.get("batch_norm", True)


def _is_torchvision(spec: ModelSpec) -> bool:
    return spec.builder is build_torchvision


def select_attackers(
    budget_families: set[str] | frozenset[str],
    *,
    n: int = 6,
    min_families: int = 3,
    include_tiny: bool = False,
    seed: int = 0,
) -> list[str]:
    """Pick `n` attackers f_b^j from the budget registry, none of a family in `budget_families`.

    The picks span at least `min_families` families and include a BatchNorm small CNN and a
    torchvision architecture whenever the remaining families offer one. Cheap-but-strong models
    are preferred (see `_ATTACKER_PREFERENCE`); `seed` 0 takes that order as is, other seeds
    perturb it deterministically. With `include_tiny`, the registry's tiny test models come first.
    """
    if n < 1:
        raise ValueError(f"need at least one attacker, got n={n}")
    if min_families > n:
        raise ValueError(f"cannot spread {n} attackers over min_families={min_families} families")
    excluded = _known_families(budget_families)
    specs = [s for s in list_models("budget", include_tiny=include_tiny) if s.family not in excluded]
    families = {s.family for s in specs}
    if len(families) < min_families or len(specs) < n:
        raise ValueError(
            f"only {len(specs)} attackers of {len(families)} families ({', '.join(sorted(families)) or 'none'}) "
            f"remain outside the budget families {sorted(excluded)}; need {n} attackers of at least "
            f"{min_families} families"
        )

    def rank(spec: ModelSpec) -> float:
        if spec.tiny:
            return -1.0
        if spec.name in _ATTACKER_PREFERENCE:
            return float(_ATTACKER_PREFERENCE.index(spec.name))
        return float(len(_ATTACKER_PREFERENCE))  # ties broken by name below

    rng = random.Random(seed)
    jitter = {s.name: (rng.uniform(0, _SEED_JITTER) if seed else 0.0) for s in specs}
    ordered = sorted(specs, key=lambda s: (rank(s) + jitter[s.name], s.name))

    picks = []
    for required in (_is_bn_small_cnn, _is_torchvision):
        first = next((s for s in ordered if required(s) and s not in picks), None)
        if first is not None and len(picks) < n and not any(required(p) for p in picks):
            picks.append(first)
    for spec in ordered:
        if len(picks) == n:
            break
        if spec in picks:
            continue
        have = {p.family for p in picks}
        # Keep enough free slots to still reach min_families.
        if spec.family in have and n - len(picks) <= min_families - len(have):
            continue
        picks.append(spec)
    picks.sort(key=ordered.index)
    return [p.name for p in picks]


def check_video_attacker(video_attacker: str | None, privacy_clips: torch.Tensor) -> None:
    """A video attacker needs videos to read: refused on an image privacy set (one-frame clips)."""
    if video_attacker is not None and privacy_clips.shape[2] == 1:
        raise ValueError(f"video attacker {video_attacker!r}: the privacy set is images (one-frame clips), which a "
                         "video attacker cannot read; set evaluation.video_attacker to null")


def _check_families(attackers: list[str], video_attacker: str | None, budget_families: set[str]) -> None:
    named = [(name, BUDGETS.spec(name)) for name in attackers]
    if video_attacker is not None:
        named.append((video_attacker, TARGETS.spec(video_attacker)))
    for name, spec in named:
        if spec.family in budget_families:
            raise ValueError(
                f"attacker {name!r} is of family {spec.family!r}, which was used for budget models in "
                f"training (budget families: {', '.join(sorted(budget_families))}); the two-fold evaluation "
                f"needs attackers never seen in training"
            )


def evaluate_two_fold(
    degrader: Degrader | None,
    data: RunData | SplitData,
    *,
    budget_families: set[str] | frozenset[str],
    attackers: list[str] | None = None,
    video_attacker: str | None = "c3d_lite",
    target_model: nn.Module | None = None,
    fresh_target: str = "c3d_lite",
    in_channels: int = 3,
    epochs: int = 25,
    patience: int = 6,
    min_epochs: int = 0,
    train_frames: int | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    workers: int = 1,
    on_result: Callable[[str, float], None] | None = None,
) -> TwoFoldResult:
    """Run both folds of the protocol on a frozen `degrader` f_d (None: raw frames).

    data: `RunData` (the target and the privacy task's splits, possibly two data sets), or one
        data set's split ("train", "val", "test") -> (uint8 clips, actions, identities).
    budget_families: families of the budget models f_d was trained against; an attacker of one of
        them is refused with a ValueError.
    attackers: budget-registry names of the N frame-level attackers (default:
        `select_attackers(budget_families)`, the same set for every seed so runs compare).
    video_attacker: a target-registry 3-D CNN trained on identity; counts among the attackers (videos only).
    target_model: the f_T trained jointly with f_d; when None, A_T is the fresh f_T's accuracy.
    in_channels: channels of f_d's output (1 for a mono degrader).
    train_frames: frames per clip each training batch of a frame-level attacker sees (None: all).
    min_epochs: every model trains at least this many epochs before early stopping may end it.
    workers: on the CPU, fit this many models at once in separate processes of one thread each
        (results do not depend on it: every model is seeded by itself).
    on_result(name, score): progress, called after every model is tested; the names are the
        attackers' and "target_fresh" / "target" for the two A_T measurements.

    A degrader (and `target_model`) that is an `nn.Module` is moved to `device` and put in eval
    mode for the evaluation (its previous mode is restored afterwards); gradients never flow into it.
    """
    start = time.perf_counter()
    keep_freed_memory()
    data = _checked_data(data)
    attackers = _checked_attackers(data, budget_families, attackers, video_attacker)
    device = torch.device(device) if device is not None else default_device()
    num_actions, num_private = (_num_classes(d.task, d.splits) for d in (data.target, data.privacy))

    def report(name: str, value: float) -> None:
        if on_result is not None:
            on_result(name, value)

    with _frozen_for_evaluation((degrader, target_model), device):
        transform = frozen(degrader) if degrader is not None else None
        _check_channels(transform, data.target.clips("val"), in_channels, device)
        if transform is not None:
            data = data.with_clips(lambda clips: degrade_split(transform, clips, device))
        if target_model is not None:
            target_acc = accuracy(target_model, *data.target.splits["test"], device=device)
            report("target", target_acc)
        # The fresh f_T, then the video attacker (cheap, and the strongest on the prototype), then
        # the frame-level attackers; every one trains from scratch, independently of the others.
        jobs = [_Job("target", fresh_target, "target", num_actions, "target_fresh")]
        if video_attacker is not None:
            jobs.append(_Job("target", video_attacker, "privacy", num_private, video_attacker))
        jobs += [_Job("budget", name, "privacy", num_private, name) for name in attackers]
        settings = dict(in_channels=in_channels, epochs=epochs, patience=patience, min_epochs=min_epochs,
                        train_frames=train_frames,
                        seed=seed, device=str(device))
        outcomes = _run_jobs(jobs, data, settings, workers if device.type == "cpu" else 1, report)
    return _result(outcomes, jobs, data, target_acc if target_model is not None else None, num_actions, num_private,
                   time.perf_counter() - start)


def _result(outcomes: dict, jobs: list[_Job], data: RunData, target_acc: float | None, num_actions: int,
            num_private: int, seconds: float) -> TwoFoldResult:
    """The two folds from every fitted model's outcome; A_T is the given f_T's, else the fresh one's."""
    target_acc_fresh = outcomes["target_fresh"][0]
    per_attacker = {job.key: outcomes[job.key][0] for job in jobs[1:]}  # in job order, not finishing order
    worst = max(per_attacker, key=per_attacker.__getitem__)
    privacy = data.privacy.task
    return TwoFoldResult(
        target_acc=target_acc if target_acc is not None else target_acc_fresh,
        target_acc_fresh=target_acc_fresh,
        privacy_acc=per_attacker[worst],
        privacy_per_attacker=per_attacker,
        worst_attacker=worst,
        chance_target=1 / num_actions,
        chance_privacy=privacy.chance(data.privacy.labels("test"), num_private),
        seconds=seconds,
        fits={job.key: outcomes[job.key][1] for job in jobs},
        privacy_metric=privacy.metric,
        privacy_cmap=per_attacker[worst] if privacy.metric == "cmap" else None,
    )


def _num_classes(task: Task, splits) -> int:
    """The outputs a fresh model needs for a task's labels: the most any split asks for."""
    return max(task.num_classes(labels) for _, labels in splits.values())


def _checked_data(data) -> RunData:
    """`data` as `RunData`, every split present."""
    if not isinstance(data, RunData):
        missing = [s for s in SPLITS if s not in data]
        if missing:
            raise ValueError(f"data lacks the split(s) {missing}; need {list(SPLITS)}")
    return as_run_data(data)


def _checked_attackers(data: RunData, budget_families, attackers: list[str] | None,
                       video_attacker: str | None) -> list[str]:
    """The frame attackers to fit (default: `select_attackers`), after checking the families."""
    check_video_attacker(video_attacker, data.privacy.clips("test"))
    budget_families = _known_families(budget_families)
    attackers = list(select_attackers(budget_families) if attackers is None else attackers)
    if not attackers and video_attacker is None:
        raise ValueError("no attackers: give attackers or a video_attacker")
    _check_families(attackers, video_attacker, budget_families)
    return attackers


@contextmanager
def _frozen_for_evaluation(modules, device: torch.device) -> Iterator[None]:
    """The given nn.Modules on `device` in eval mode for the block; their previous modes restored after."""
    modes = {m: m.training for m in modules if isinstance(m, nn.Module)}
    for module in modes:
        module.to(device).eval()
    try:
        yield
    finally:
        for module, was_training in modes.items():
            module.train(was_training)


@dataclass(frozen=True)
class _Job:
    """One model of the evaluation: trained from scratch on the task of `pipeline` ("target": the
    action; "privacy": identity or attributes)."""

    role: str  # registry: "target" (3-D CNN) or "budget" (frame-level 2-D CNN)
    name: str
    pipeline: str
    num_classes: int
    key: str  # name of the result ("target_fresh" for the fresh f_T)


def _fit_and_test(job: _Job, data: RunData, *, in_channels: int, epochs: int, patience: int, min_epochs: int,
                  train_frames: int | None, seed: int, device: str) -> tuple[float, dict[str, float]]:
    """(test score, {"epochs", "best_epoch", "seconds"}) of `job` trained from scratch."""
    start = time.perf_counter()
    # Fresh weights; the registry already gives torchvision models a BatchNorm momentum that
    # converges in a short fit (see raypriv.method.models.budget.build_torchvision).
    torch.manual_seed(seed)
    model = create_model(job.role, job.name, num_classes=job.num_classes, in_channels=in_channels)
    task_data = getattr(data, job.pipeline)
    fit = fit_classifier(
        model, task_data.splits["train"], task_data.splits["val"], epochs=epochs, patience=patience,
        min_epochs=min_epochs, seed=seed, device=torch.device(device),
        train_frames=train_frames if job.role == "budget" else None, task=task_data.task,
    )
    value = score(model, *task_data.splits["test"], task=task_data.task, device=torch.device(device))
    return value, {"epochs": fit.epochs, "best_epoch": fit.best_epoch, "seconds": time.perf_counter() - start}


def _expected_cost(job: _Job) -> int:
    """Rank of a job's training time: torchvision 2-D CNNs > 3-D CNNs > raypriv's small 2-D CNNs."""
    if job.role == "budget":
        return 2 if _is_torchvision(BUDGETS.spec(job.name)) else 0
    return 1


_WORKER: dict = {}  # a worker process's copy of the data and settings


def _worker_init(data: RunData, settings: dict, parent_pid: int) -> None:
    die_with_parent(parent_pid)  # a killed evaluation must not leave its workers fitting attackers
    torch.set_num_threads(1)  # one process per core: more threads would only contend
    keep_freed_memory()
    _WORKER.update(data=data, settings=settings)


def _worker_fit(job: _Job) -> tuple[float, dict[str, float]]:
    return _fit_and_test(job, _WORKER["data"], **_WORKER["settings"])


def _run_jobs(jobs: list[_Job], data: RunData, settings: dict, workers: int,
              report: Callable[[str, float], None]) -> dict[str, tuple[float, dict[str, float]]]:
    """Fit every job (in `workers` spawned processes when > 1) and report each score as it lands.

    On several ranks (a data-parallel trial) the jobs are dealt out, longest first, round-robin:
    each rank fits its own models by itself, and the outcomes are gathered on every rank.
    """
    rank, size = world()
    if size > 1:
        mine = [job for i, job in enumerate(sorted(jobs, key=_expected_cost, reverse=True)) if i % size == rank]
        with alone():
            local = _run_jobs(mine, data, settings, workers, report)
        gathered: list = [None] * size
        dist.all_gather_object(gathered, local)
        outcomes = {key: value for part in gathered for key, value in part.items()}
        for key in outcomes.keys() - local.keys():
            report(key, outcomes[key][0])
        return outcomes
    outcomes: dict[str, tuple[float, dict[str, float]]] = {}
    if workers <= 1 or len(jobs) == 1:
        for job in jobs:
            outcomes[job.key] = _fit_and_test(job, data, **settings)
            report(job.key, outcomes[job.key][0])
        return outcomes
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # Longest first: a torchvision attacker takes several times as long as the small CNNs, and
    # started last it runs alone at the end while the other workers idle.
    jobs = sorted(jobs, key=_expected_cost, reverse=True)

    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context, initializer=_worker_init,
                             initargs=(data, settings, os.getpid())) as pool:
        futures = {pool.submit(_worker_fit, job): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            outcomes[job.key] = future.result()
            report(job.key, outcomes[job.key][0])
    return outcomes


def _check_channels(transform: Transform | None, clips: torch.Tensor, in_channels: int, device: torch.device) -> None:
    x = clips[:2].to(device).float().div_(255)
    out = transform(x) if transform is not None else x
    if out.dim() != 5 or out.shape[1] != in_channels:
        raise ValueError(
            f"the degraded clips have shape {tuple(out.shape)}, expected [B, {in_channels}, T, H, W] "
            f"(in_channels={in_channels}: pass the degrader's output channels)"
        )
