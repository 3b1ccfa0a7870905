"""The paper's baselines (section 4.1) as fixed degraders, judged by the same two-fold protocol.

- `raw`: the frames as they are (no privacy at all; the upper bound of A_T).
- Method 1, `downsample_s{2,4,8,16}`: average s×s blocks, shown back at full size.
- Method 4, `face_crop`: the face pixels blanked (what a face detector plus black box would do).
- Method 5, `body_crop`: every body pixel blanked.
- `silhouette` (hand-made, not in the paper): a 1-channel binary body mask as the degraded clip.
  It keeps the motion and drops colour and texture, leaving only body shape (FACTS.md: action
  intact, strongest attacker 4.4× chance on the prototype): a learned f_d should at least match it.

The crops and the silhouette use the synthetic SBU set's per-clip masks, so their degraded clips are
computed once per split up front (uint8, like the raw clips) instead of per batch. Any other data
(`run_baselines(data=...)`, e.g. UCF-101 + VISPR) has no masks: its baselines are `raw` and Method 1
(`MASKLESS`), applied to the task set's videos and the privacy set's images alike.

`measure_downsampling` is the paper's Table 1 check of a data set: how fast action and identity die
under Method 1's downsampling, one fresh model per (factor, task).
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from raypriv.method.data import SPLITS, Preset, RunData, build_dataset
from raypriv.method.data.transforms import downsample
from raypriv.method.engine import accuracy, default_device, fit_classifier
from raypriv.method.evaluation import TwoFoldResult, evaluate_two_fold
from raypriv.method.models import create_model

DOWNSAMPLING_FACTORS = (2, 4, 8, 16)
MASKLESS = ("raw", *(f"downsample_s{s}" for s in DOWNSAMPLING_FACTORS))  # what any data set allows
METHODS = (*MASKLESS, "face_crop", "body_crop", "silhouette")
CSV_COLUMNS = ("method", "target_acc", "target_acc_fresh", "privacy_acc", "worst_attacker")
# Masks are soft (anti-aliased coverage in 0..255); a pixel belongs to the face or body above half.
_MASK_THRESHOLD = 127


@dataclass(frozen=True)
class BaselineRow:
    method: str
    result: TwoFoldResult

    @property
    def target_acc(self) -> float:
        return self.result.target_acc

    @property
    def target_acc_fresh(self) -> float:
        return self.result.target_acc_fresh

    @property
    def privacy_acc(self) -> float:
        return self.result.privacy_acc

    @property
    def worst_attacker(self) -> str:
        return self.result.worst_attacker


def blank_masked(clips: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """uint8 clips `[N, C, T, H, W]` with every pixel where the uint8 `mask` `[N, T, H, W]` > 0.5 set to 0."""
    return clips.masked_fill((mask > _MASK_THRESHOLD).unsqueeze(1), 0)


def silhouette(body_mask: torch.Tensor) -> torch.Tensor:
    """The binary body mask `[N, T, H, W]` (uint8) as a 1-channel uint8 clip `[N, 1, T, H, W]` (0 or 255)."""
    return ((body_mask > _MASK_THRESHOLD).to(torch.uint8) * 255).unsqueeze(1)


def _prepare(method: str, clips: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, Callable | None, int]:
    """(clips the method's models read, per-batch transform or None, channels) for one split."""
    if method == "raw":
        return clips, None, 3
    if method.startswith("downsample_s"):
        factor = int(method.removeprefix("downsample_s"))
        return clips, lambda x: downsample(x, factor), 3
    if method == "face_crop":
        return blank_masked(clips, masks[:, 0]), None, 3
    if method == "body_crop":
        return blank_masked(clips, masks[:, 1]), None, 3
    if method == "silhouette":
        return silhouette(masks[:, 1]), None, 1
    raise ValueError(f"unknown baseline {method!r}; known baselines: {', '.join(METHODS)}")


def run_baselines(
    preset: str | Preset = "laptop",
    *,
    seed: int = 0,
    data_seed: int | None = None,
    methods: Sequence[str] | None = None,
    attackers: list[str] | None = None,
    video_attacker: str | None = "c3d_lite",
    fresh_target: str = "c3d_lite",
    budget_families: frozenset[str] | set[str] = frozenset(),
    epochs: int = 25,
    patience: int = 6,
    min_epochs: int = 0,
    train_frames: int | None = None,
    workers: int = 1,
    device: torch.device | str | None = None,
    out_dir: Path | None = None,
    on_row: Callable[[BaselineRow], None] | None = None,
    data: RunData | None = None,
) -> list[BaselineRow]:
    """Evaluate every baseline in `methods` on the synthetic SBU splits (default: all of `METHODS`),
    or on `data` (default: `MASKLESS`, the only ones without masks).

    `seed` draws the models (fresh f_T, attackers: initialisation, batch order, the zoo's sample);
    `data_seed` (default: `seed`) the synthetic SBU clips, as `seed` and `data.seed` of a run config.
    There is no jointly trained f_T, so A_T is a fresh f_T's accuracy. `budget_families` keeps the
    attackers the same as a learned degrader's evaluation would use, so the points compare.
    With `out_dir`, `baselines.csv` (rewritten after every method, so a long run leaves partial
    results) and `baselines.json` (per-attacker scores too) are written there.
    """
    known = METHODS if data is None else MASKLESS
    methods = list(known if methods is None else methods)
    unknown = [m for m in methods if m not in known]
    if unknown:
        hint = "" if data is None else " (the others need the synthetic SBU set's face and body masks)"
        raise ValueError(f"unknown baseline(s) {unknown}; known baselines: {', '.join(known)}{hint}")
    data_seed = seed if data_seed is None else data_seed
    method_data = _sbu_method_data(preset, data_seed) if data is None else _transform_only(data)
    rows: list[BaselineRow] = []
    for method in methods:
        degraded, transform, channels = method_data(method)
        result = evaluate_two_fold(
            transform, degraded, budget_families=set(budget_families), attackers=attackers,
            video_attacker=video_attacker, fresh_target=fresh_target, in_channels=channels,
            epochs=epochs, patience=patience, min_epochs=min_epochs, train_frames=train_frames, workers=workers,
            seed=seed, device=device,
        )
        rows.append(BaselineRow(method, result))
        if out_dir is not None:
            write_csv(rows, Path(out_dir) / "baselines.csv")
        if on_row is not None:
            on_row(rows[-1])
    if out_dir is not None and rows:
        (Path(out_dir) / "baselines.json").write_text(
            json.dumps([{"method": r.method, **r.result.as_dict()} for r in rows], indent=2) + "\n"
        )
    return rows


def _sbu_method_data(preset: str | Preset, seed: int) -> Callable:
    """method -> (its data, transform, channels) on the synthetic SBU splits, masks included."""
    splits = {s: build_dataset("sbu", s, synthetic=True, preset=preset, seed=seed) for s in SPLITS}
    raw = {s: (*ds.tensors(), ds.actions, ds.identities) for s, ds in splits.items()}

    def method_data(method: str) -> tuple[dict, Callable | None, int]:
        data, transform, channels = {}, None, 3
        for s, (clips, masks, actions, identities) in raw.items():
            degraded, transform, channels = _prepare(method, clips, masks)
            data[s] = (degraded, actions, identities)
        return data, transform, channels

    return method_data


def _transform_only(data: RunData) -> Callable:
    """method -> (data, transform, channels) for the maskless methods: per-batch transforms of `data`."""
    def method_data(method: str) -> tuple[RunData, Callable | None, int]:
        _, transform, channels = _prepare(method, None, None)
        return data, transform, channels

    return method_data


def write_csv(rows: Sequence[BaselineRow], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for r in rows:
            writer.writerow([r.method, f"{r.target_acc:.4f}", f"{r.target_acc_fresh:.4f}", f"{r.privacy_acc:.4f}",
                             r.worst_attacker])
    return path


# --- Method 1 as the paper's Table 1: one fresh model per (downsampling factor, task) ---------------

@dataclass(frozen=True)
class DownsamplingRow:
    factor: int
    task: str  # "action" | "identity"
    model: str
    test_accuracy: float
    chance: float
    epochs: int
    seconds: float


def measure_downsampling(
    preset: str | Preset,
    factors: tuple[int, ...] = (1, 2, 4, 8, 16),
    *,
    action_model: str = "c3d_lite",
    identity_model: str = "smallcnn_d3_w16",
    epochs: int = 25,
    patience: int = 6,
    seed: int = 0,
    tasks: tuple[str, ...] = ("action", "identity"),
    on_row: Callable[[DownsamplingRow], None] | None = None,
) -> list[DownsamplingRow]:
    """Train and test one fresh model per (factor, task) on the synthetic SBU set.

    `on_row` is called with each row as soon as it is measured (progress for long runs).
    """
    device = default_device()
    data = {split: build_dataset("sbu", split, synthetic=True, preset=preset, seed=seed) for split in SPLITS}
    clips = {split: ds.tensors()[0] for split, ds in data.items()}
    specs = {
        "action": ("target", action_model, "actions", data["train"].num_actions),
        "identity": ("budget", identity_model, "identities", data["train"].num_identities),
    }
    rows = []
    for factor in factors:
        for task in tasks:
            role, name, attr, classes = specs[task]
            torch.manual_seed(seed)
            model = create_model(role, name, num_classes=classes)
            start = time.perf_counter()
            transform = lambda x, f=factor: downsample(x, f)  # noqa: E731
            labels = {split: getattr(ds, attr) for split, ds in data.items()}
            fit = fit_classifier(
                model, (clips["train"], labels["train"]), (clips["val"], labels["val"]),
                transform=transform, epochs=epochs, patience=patience, seed=seed, device=device,
            )
            acc = accuracy(model, clips["test"], labels["test"], transform=transform, device=device)
            rows.append(DownsamplingRow(factor, task, name, acc, 1 / classes, fit.epochs, time.perf_counter() - start))
            if on_row is not None:
                on_row(rows[-1])
    return rows


def format_table(rows: list[DownsamplingRow]) -> str:
    """Markdown table: one row per factor, action and identity test accuracy side by side."""
    by_factor: dict[int, dict[str, DownsamplingRow]] = {}
    for row in rows:
        by_factor.setdefault(row.factor, {})[row.task] = row
    models = {row.task: row.model for row in rows}
    header = " | ".join(f"{task} ({models[task]}, chance {100 * r.chance:.1f} %)"
                        for task, r in next(iter(by_factor.values())).items())
    lines = [f"| downsampling s | {header} |", "|---|" + "---|" * len(models)]
    for factor, tasks in by_factor.items():
        cells = " | ".join(f"{100 * r.test_accuracy:.1f} %" for r in tasks.values())
        lines.append(f"| {factor} | {cells} |")
    return "\n".join(lines)
