"""How fast action and identity die under spatial downsampling (the paper's Table 1, Method 1).

For each factor s, a fresh action model and a fresh identity model are trained from scratch on
downsampled training clips (early stopping on downsampled validation clips) and tested on
downsampled test clips. This is the check that a data set has the paper's key property: identity
survives much stronger downsampling than the action.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from raypriv.data import SPLITS, Preset, build_dataset
from raypriv.data.transforms import downsample
from raypriv.evaluation.fit import accuracy, default_device, fit_classifier
from raypriv.models import create_model


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
