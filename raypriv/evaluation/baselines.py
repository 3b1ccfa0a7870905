"""The paper's baselines (section 4.1) as fixed degraders, judged by the same two-fold protocol.

- `raw`: the frames as they are (no privacy at all; the upper bound of A_T).
- Method 1, `downsample_s{2,4,8,16}`: average s×s blocks, shown back at full size.
- Method 4, `face_crop`: the face pixels blanked (what a face detector plus black box would do).
- Method 5, `body_crop`: every body pixel blanked.
- `silhouette` (hand-made, not in the paper): a 1-channel binary body mask as the degraded clip.
  It keeps the motion and drops colour and texture, leaving only body shape (FACTS.md: action
  intact, strongest attacker 4.4× chance on the prototype): a learned f_d should at least match it.

The crops and the silhouette use the synthetic set's per-clip masks, so their degraded clips are
computed once per split up front (uint8, like the raw clips) instead of per batch. `plot_tradeoff`
draws the paper's Fig. 2 (A_T against A_B^N) and takes learned degraders' points as well.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from raypriv.data import SPLITS, Preset, build_dataset
from raypriv.data.transforms import downsample
from raypriv.evaluation.two_fold import TwoFoldResult, evaluate_two_fold

DOWNSAMPLING_FACTORS = (2, 4, 8, 16)
METHODS = ("raw", *(f"downsample_s{s}" for s in DOWNSAMPLING_FACTORS), "face_crop", "body_crop", "silhouette")
CSV_COLUMNS = ("method", "target_acc", "target_acc_fresh", "privacy_acc", "worst_attacker")
# Masks are soft (anti-aliased coverage in 0..255); a pixel belongs to the face or body above half.
_MASK_THRESHOLD = 127


@dataclass(frozen=True)
class BaselineRow:
    method: str
    kind: str  # plot style: "raw" | "downsample" | "face_crop" | "body_crop" | "silhouette"
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


def _kind(method: str) -> str:
    return "downsample" if method.startswith("downsample_s") else method


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
    methods: Sequence[str] | None = None,
    attackers: list[str] | None = None,
    video_attacker: str | None = "c3d_lite",
    fresh_target: str = "c3d_lite",
    budget_families: frozenset[str] | set[str] = frozenset(),
    epochs: int = 25,
    patience: int = 6,
    train_frames: int | None = None,
    workers: int = 1,
    device: torch.device | str | None = None,
    out_dir: Path | None = None,
    on_row: Callable[[BaselineRow], None] | None = None,
) -> list[BaselineRow]:
    """Evaluate every baseline in `methods` (default: all of `METHODS`) on the synthetic SBU splits.

    There is no jointly trained f_T, so A_T is a fresh f_T's accuracy. `budget_families` keeps the
    attackers the same as a learned degrader's evaluation would use, so the points compare.
    With `out_dir`, `baselines.csv` (rewritten after every method, so a long run leaves partial
    results), `baselines.json` (per-attacker accuracies too) and `baselines.png` are written there.
    """
    methods = list(METHODS if methods is None else methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; known baselines: {', '.join(METHODS)}")
    splits = {s: build_dataset("sbu", s, synthetic=True, preset=preset, seed=seed) for s in SPLITS}
    raw = {s: (*ds.tensors(), ds.actions, ds.identities) for s, ds in splits.items()}
    rows: list[BaselineRow] = []
    for method in methods:
        data, transform, channels = {}, None, 3
        for s, (clips, masks, actions, identities) in raw.items():
            degraded, transform, channels = _prepare(method, clips, masks)
            data[s] = (degraded, actions, identities)
        result = evaluate_two_fold(
            transform, data, budget_families=set(budget_families), attackers=attackers,
            video_attacker=video_attacker, fresh_target=fresh_target, in_channels=channels,
            epochs=epochs, patience=patience, train_frames=train_frames, workers=workers, seed=seed,
            device=device,
        )
        rows.append(BaselineRow(method, _kind(method), result))
        if out_dir is not None:
            write_csv(rows, Path(out_dir) / "baselines.csv")
        if on_row is not None:
            on_row(rows[-1])
    if out_dir is not None and rows:
        out_dir = Path(out_dir)
        (out_dir / "baselines.json").write_text(
            json.dumps([{"method": r.method, **r.result.as_dict()} for r in rows], indent=2) + "\n"
        )
        plot_tradeoff(
            [(r.method, r.privacy_acc, r.target_acc, r.kind) for r in rows], out_dir / "baselines.png",
            chance_privacy=rows[0].result.chance_privacy, chance_target=rows[0].result.chance_target,
        )
    return rows


def write_csv(rows: Sequence[BaselineRow], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for r in rows:
            writer.writerow([r.method, f"{r.target_acc:.4f}", f"{r.target_acc_fresh:.4f}", f"{r.privacy_acc:.4f}",
                             r.worst_attacker])
    return path


# kind -> (marker, colour, legend label); unknown kinds (e.g. learned degraders) get stars.
_STYLES = {
    "raw": ("s", "black", "raw frames"),
    "downsample": ("o", "tab:blue", "Method 1: downsampling"),
    "face_crop": ("^", "tab:orange", "Method 4: face crop"),
    "body_crop": ("v", "tab:red", "Method 5: body crop"),
    "silhouette": ("D", "tab:green", "silhouette (hand-made)"),
}
_LEARNED_COLOURS = ("tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")


def plot_tradeoff(
    points: Sequence[tuple[str, float, float, str]],
    path: str | Path,
    *,
    chance_privacy: float | None = 1 / 13,
    chance_target: float | None = 1 / 8,
    title: str = "Target and budget task trade-off (synthetic SBU)",
) -> Path:
    """The paper's Fig. 2: A_T (y) against A_B^N (x), one marker per (label, privacy, target, kind).

    Downsampling markers grow with the factor s read from the label (`..._s8`); other kinds than
    the baselines' (e.g. "adversarial" for learned degraders) are drawn as stars, one colour each,
    growing with a trailing number in the label (e.g. `M4`). The dashed line marks identity chance
    (the floor of A_B^N); the upper left is the desirable corner.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.4, 5.2))
    labelled: set[str] = set()
    learned = sorted({kind for *_, kind in points if kind not in _STYLES})
    for label, privacy, target, kind in points:
        if kind in _STYLES:
            marker, colour, legend = _STYLES[kind]
        else:
            marker, colour, legend = "*", _LEARNED_COLOURS[learned.index(kind) % len(_LEARNED_COLOURS)], kind
        number = re.search(r"(\d+)$", label)
        size = 60.0
        if kind == "downsample" and number:
            size = 40.0 + 30.0 * int(number.group(1)) ** 0.75
        elif kind not in _STYLES:
            size = 120.0 + (25.0 * int(number.group(1)) if number else 0.0)
        ax.scatter(privacy, target, s=size, marker=marker, color=colour, edgecolors="black", linewidths=0.5,
                   alpha=0.85, label=None if legend in labelled else legend, zorder=3)
        labelled.add(legend)
        ax.annotate(label, (privacy, target), textcoords="offset points", xytext=(6, 4), fontsize=7)
    if chance_privacy is not None:
        ax.axvline(chance_privacy, color="gray", linestyle="--", linewidth=1, label="identity chance")
    if chance_target is not None:
        ax.axhline(chance_target, color="gray", linestyle=":", linewidth=1, label="action chance")
    ax.set_xlim(0, 1.05)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("actor-pair accuracy $A_B^N$ (best of N fresh attackers; lower is better)")
    ax.set_ylabel("action accuracy $A_T$ (higher is better)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    # Outside the axes: the corners hold points (raw and downsampling at the right, the goal upper left).
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
