"""One training run without Ray: data -> Algorithm 1 -> two-fold evaluation -> files in a folder.

`run_training(cfg, out_dir, ...) -> RunResult` is the one entry point of a run: `raypriv train`
calls it directly, the sweep's Ray Train worker calls the same function. Files written to `out_dir`:

- `degrader.pt2`: f_d exported with torch.export (frames `[N, 3, H, W]` in [0, 1] -> `[N, C, H, W]`),
  loadable with `torch.export.load(path).module()` and nothing but torch;
- `weights.safetensors`: f_d, f_T and the budget models;
- `config.yaml`: the resolved run config;
- `metrics.json`: `RunResult.as_dict()`: A_T, A_T fresh, the privacy score (`privacy_acc`: A_B^N,
  or the attackers' best cMAP in the cross-dataset setting, `privacy_metric` saying which, and
  `privacy_cmap`), every attacker's score, chance levels, how long each evaluated model trained
  (`fits`), phase step counts, pre-training's validation scores, parameter counts, wall times and
  the per-iteration history;
- `samples.png`: raw test frames beside f_d(X).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import yaml

from raypriv.method.adversarial import Trained, train_adversarial
from raypriv.method.config import ConfigError, RunConfig, load_run_config
from raypriv.method.data import DATASET_INFO, RunData, load_run_data, privacy_dataset_of
from raypriv.method.engine import default_device, world
from raypriv.method.evaluation import TwoFoldResult, evaluate_two_fold, select_attackers
from raypriv.method.export import export_degrader, save_samples, save_weights
from raypriv.method.models import (BUDGETS, DEGRADERS, TARGETS, budget_model_names, count_parameters,
                                   families_of)

METRIC_KEYS = (
    "target_acc", "target_acc_fresh", "privacy_acc", "privacy_metric", "privacy_cmap", "privacy_per_attacker",
    "worst_attacker", "chance_target", "chance_privacy", "fits", "steps", "pretrain", "degrader_params",
    "target_params", "seconds", "budget_models", "attackers",
)


@dataclass(frozen=True)
class RunResult:
    """What one training run measured: its two-fold evaluation and the record of its training."""

    evaluation: TwoFoldResult
    steps: dict[str, int]
    pretrain: dict[str, float]
    degrader_params: int
    target_params: int
    budget_models: list[str]
    attackers: list[str]  # the frame attackers, then the video attacker
    seconds: dict[str, Any]  # phase -> wall seconds; "evaluation" and "total" included
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def target_acc(self) -> float:
        return self.evaluation.target_acc

    @property
    def target_acc_fresh(self) -> float:
        return self.evaluation.target_acc_fresh

    @property
    def privacy_acc(self) -> float:
        return self.evaluation.privacy_acc

    def as_dict(self) -> dict[str, Any]:
        """The `metrics.json` mapping: the evaluation's fields, then the training's."""
        out = {**self.evaluation.as_dict(), **asdict(self)}
        del out["evaluation"]
        return out


def check_run_config(cfg: RunConfig, source: str = "config") -> RunConfig:
    """`cfg`, once every model name is registered and the two-fold evaluation has attackers of
    families the budget models never use; else a ConfigError naming `source`, the key and the value.

    Checked before any training: an attacker set that overlaps the budget families would only be
    refused by the evaluation, after the whole adversarial phase had run.
    """
    names = [("models.degrader", DEGRADERS, cfg.models.degrader), ("models.target", TARGETS, cfg.models.target),
             *(("budget.models", BUDGETS, name) for name in cfg.budget.models),
             *(("evaluation.attackers", BUDGETS, name) for name in cfg.evaluation.attackers or ())]
    if cfg.evaluation.video_attacker is not None:
        names.append(("evaluation.video_attacker", TARGETS, cfg.evaluation.video_attacker))

    def refuse(key: str, problem: object) -> ConfigError:
        return ConfigError(f"{source}: {key}: {problem}")

    for key, registry, name in names:
        try:
            registry.spec(name)
        except ValueError as err:
            raise refuse(key, err) from None
    if cfg.budget.policy == "cycle" and not cfg.budget.models:
        raise refuse("budget.models", "must name at least one budget model when budget.policy is 'cycle'")
    unknown = sorted(set(cfg.budget.families) - set(BUDGETS.families()))
    if unknown:
        raise refuse("budget.families", f"unknown budget families {unknown}; registered families: {', '.join(BUDGETS.families())}")
    try:
        run_attackers(cfg, families_of(budget_model_names(cfg.budget)))
    except ValueError as err:
        raise refuse("evaluation", err) from None
    _check_privacy_task(cfg, refuse)
    return cfg


def _check_privacy_task(cfg: RunConfig, refuse: Callable[[str, object], ConfigError]) -> None:
    """The privacy loss fits the privacy labels' task, and a video attacker has videos to read."""
    name = privacy_dataset_of(cfg.data)
    info = DATASET_INFO[name]
    if cfg.adversarial.privacy_loss not in info.privacy_task.privacy_losses:
        raise refuse("adversarial.privacy_loss", f"{cfg.adversarial.privacy_loss!r} does not fit the {info.privacy_task.name} "
                     f"privacy labels of {name}; use {' or '.join(info.privacy_task.privacy_losses)}")
    if info.images and cfg.evaluation.video_attacker is not None:
        raise refuse("evaluation.video_attacker", f"{cfg.evaluation.video_attacker!r}: the privacy set {name} is "
                     "images, which a video attacker cannot read; set it to null")


def resolve_run_config(path: str | Path, profile: str | None = None, overrides: tuple[str, ...] = (), *,
                       sweep_trial: bool = False) -> RunConfig:
    """`load_run_config` (the YAML's layers, schema-checked), then `check_run_config` (registries)."""
    cfg = load_run_config(path, profile, overrides, sweep_trial=sweep_trial)
    return check_run_config(cfg, f"{path}" + (f" (profile {profile})" if profile else ""))


def run_attackers(cfg: RunConfig, budget_families: set[str]) -> list[str]:
    """The configured frame attackers, or N chosen from the families f_d never trained against;
    a ValueError when a configured attacker is of a budget family."""
    attackers = cfg.evaluation.attackers
    if attackers is None:
        return select_attackers(budget_families, n=cfg.evaluation.num_attackers, seed=cfg.seed)
    clash = [a for a in attackers if BUDGETS.spec(a).family in budget_families]
    if clash:
        raise ValueError(f"evaluation.attackers {clash} are of budget-model families ({', '.join(sorted(budget_families))}); "
                         "the two-fold evaluation needs attackers of families never used as budget models")
    return list(attackers)


def per_frame(frame_module: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Apply an exported per-frame f_d (`[N, 3, H, W] -> [N, C, H, W]`) to clips `[B, 3, T, H, W]`."""

    def transform(clips: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = clips.shape
        with torch.no_grad():
            out = frame_module(clips.transpose(1, 2).reshape(b * t, c, h, w).cpu())
        return out.reshape(b, t, *out.shape[1:]).transpose(1, 2).to(clips.device)

    return transform


def load_splits(cfg: RunConfig, *, synthetic: bool, root: str | None = None):
    """split -> (uint8 clips, actions, identities), plus the number of actions and identities, of a
    data set that carries both labels (SBU); `load_run_data` is the general form."""
    data = load_run_data(cfg.data, synthetic=synthetic, root=root)
    return data.triples(), data.target.num_classes, data.privacy.num_classes


def run_training(
    cfg: RunConfig,
    out_dir: Path,
    *,
    synthetic: bool,
    root: str | None = None,
    progress: bool = False,
    log: Callable[[str], None] = print,
    on_iteration: Callable[[dict[str, float]], None] | None = None,
    resume: dict | None = None,
    on_checkpoint: Callable[[dict], None] | None = None,
) -> RunResult:
    """Train f_d with Algorithm 1, evaluate it two-fold, and write the run's files to `out_dir`.

    `on_iteration(row)` receives every adversarial iteration's metrics (the sweep logs them);
    without a progress bar, every 10th iteration is also summarised through `log`.
    `on_checkpoint(state)` receives the game's state as it goes and `resume` continues from one
    (`raypriv.method.adversarial.train_adversarial`). In a process group (a data-parallel sweep
    trial) every rank trains and evaluates; rank 0 alone exports and writes the files.
    Nothing is written to `out_dir` until training and evaluation succeeded: a wrong root, a
    diverging loss or an interrupted run leaves no half-filled folder.
    """
    started = time.perf_counter()
    device = default_device()
    data = load_run_data(cfg.data, synthetic=synthetic, root=root)
    log(f"data: {_describe(data)} ({cfg.data.preset} preset)")
    metric = data.privacy.task.metric

    def iteration(row: dict[str, float]) -> None:
        if not progress and row["iteration"] % 10 == 0:
            log(f"iteration {row['iteration']:.0f}: L_T {row['loss_target']:.3f}  L_B {row['loss_privacy']:.3f}  "
                f"f_T val acc {100 * row['target_val_acc']:.1f} %  f_b train {metric} "
                f"{100 * row['budget_train_acc']:.1f} %  ({time.perf_counter() - started:.0f} s)")
        if on_iteration is not None:
            on_iteration(row)

    trained = train_adversarial(cfg, data, device=device, progress=progress, on_iteration=iteration, resume=resume,
                                on_checkpoint=on_checkpoint)
    log(f"pre-training and adversarial phases: {', '.join(f'{k} {v:.0f} s' for k, v in trained.seconds.items())}")
    log(f"trained: budget models {trained.budget_names}; steps {trained.steps}; "
        f"pre-training validation scores (f_T accuracy, f_b {metric}) "
        f"{', '.join(f'{k} {100 * v:.1f} %' for k, v in trained.pretrain.items())}")

    # f_d is exported (to a staging folder) before the long evaluation: a model that cannot be
    # exported fails the run now, not after every attacker has trained (seen with torch 2.11).
    height, width = data.target.clips("test").shape[-2:]
    writer = world()[0] == 0
    with tempfile.TemporaryDirectory(prefix="raypriv-export-") as staging:
        if writer:
            staged = export_degrader(trained.degrader, Path(staging) / "degrader.pt2", height=height, width=width)
        evaluation, attackers = _two_fold(cfg, trained.degrader, data, families_of(trained.budget_names),
                                          in_channels=trained.degrader.out_channels, log=log, label="attacker ",
                                          target_model=trained.target, device=device)
        if writer:
            out_dir.mkdir(parents=True, exist_ok=True)
            shutil.move(staged, out_dir / "degrader.pt2")
    result = _result(cfg, trained, evaluation, attackers, time.perf_counter() - started)
    if writer:
        _write_run_files(out_dir, cfg, trained, data.target.clips("test")[:4], result)
    return result


def _describe(data: RunData) -> str:
    """The splits' sizes, per data set when the two tasks have their own."""
    def sizes(task_data) -> str:
        return ", ".join(f"{s} {len(c)}" for s, (c, _) in task_data.splits.items())

    if data.shared:
        return f"{sizes(data.target)} clips"
    return f"videos {sizes(data.target)}; privacy images {sizes(data.privacy)}"


def _result(cfg: RunConfig, trained: Trained, evaluation: TwoFoldResult, attackers: list[str],
            total_seconds: float) -> RunResult:
    return RunResult(
        evaluation=evaluation, steps=trained.steps, pretrain=trained.pretrain,
        degrader_params=count_parameters(trained.degrader), target_params=count_parameters(trained.target),
        budget_models=trained.budget_names,
        attackers=attackers + ([cfg.evaluation.video_attacker] if cfg.evaluation.video_attacker else []),
        seconds={**trained.seconds, "evaluation": evaluation.seconds, "total": total_seconds},
        history=trained.history,
    )


def _write_run_files(out_dir: Path, cfg: RunConfig, trained: Trained, test_clips: torch.Tensor,
                     result: RunResult) -> None:
    (out_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    save_weights(out_dir / "weights.safetensors", {
        "degrader": trained.degrader, "target": trained.target,
        **{f"budget.{i}": b for i, b in enumerate(trained.budgets)},
    })
    raw = test_clips.float().div(255)
    with torch.no_grad():
        degraded = trained.degrader.cpu()(raw)
    save_samples(raw, degraded, out_dir / "samples.png")
    (out_dir / "metrics.json").write_text(json.dumps(result.as_dict(), indent=2))


def evaluate_exported(
    cfg: RunConfig,
    degrader_path: Path,
    *,
    synthetic: bool,
    root: str | None = None,
    budget_families: set[str] | None = None,
    log: Callable[[str], None] = print,
) -> TwoFoldResult:
    """Two-fold evaluation of an exported `degrader.pt2` with a fresh f_T and fresh attackers.

    `budget_families` defaults to the families of the budget models listed in the
    `metrics.json` beside the degrader (none if there is no such file).
    """
    from raypriv.method.export import load_degrader

    if budget_families is None:
        metrics_path = Path(degrader_path).parent / "metrics.json"
        names = json.loads(metrics_path.read_text()).get("budget_models", []) if metrics_path.exists() else []
        budget_families = families_of(names)
    transform = per_frame(load_degrader(degrader_path))
    data = load_run_data(cfg.data, synthetic=synthetic, root=root)
    channels = transform(data.target.clips("test")[:1].float().div(255)).shape[1]
    return _two_fold(cfg, transform, data, budget_families, in_channels=channels, log=log)[0]


def evaluation_workers(cfg: RunConfig) -> int:
    """`evaluation.workers`, or when unset the torch threads of this process (Ray sets a Train worker's)."""
    return cfg.evaluation.workers or max(1, torch.get_num_threads())


def _two_fold(cfg: RunConfig, degrader, data, budget_families: set[str], *, in_channels: int,
              log: Callable[[str], None], label: str = "", **extra: Any):
    """`evaluate_two_fold` as `cfg.evaluation` sets it up: (result, the frame attackers' names)."""
    attackers = run_attackers(cfg, budget_families)
    result = evaluate_two_fold(
        degrader, data, budget_families=budget_families, attackers=attackers,
        video_attacker=cfg.evaluation.video_attacker, fresh_target=cfg.models.target, in_channels=in_channels,
        epochs=cfg.evaluation.epochs, patience=cfg.evaluation.patience, min_epochs=cfg.evaluation.min_epochs,
        train_frames=cfg.evaluation.train_frames, workers=evaluation_workers(cfg), seed=cfg.seed,
        on_result=lambda name, value: log(f"  {label}{name}: {100 * value:.1f} %"), **extra,
    )
    log("evaluation fits (epochs run, best epoch, seconds): " + ", ".join(
        f"{name} {f['epochs']}/{f['best_epoch']} {f['seconds']:.0f} s" for name, f in result.fits.items()))
    return result, attackers
