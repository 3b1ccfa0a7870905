"""Datasets: one entry point, `build_dataset(name, split, ...)`, for every dataset raypriv knows, and
`load_run_data`, what a run holds in memory (`RunData`: the target task's and the privacy task's
splits).

Every dataset is a `torch.utils.data.Dataset` of `Sample`s (see `raypriv.method.data.types`):

| name | real loader | synthetic stand-in | labels |
|---|---|---|---|
| `sbu` | `sbu.SBUKinect` | `synthetic.SyntheticSBU` | `actions` (8) and `identities` (13 actor pairs) |
| `ucf101` | `ucf101.UCF101` | `world.SyntheticUCF101` | `actions` (101; the stand-in's 12) |
| `vispr` | `vispr.VISPR` | `world.SyntheticVISPR` | multi-hot `attributes` (17, 7 or 68; the stand-in's 8), images |
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from raypriv.method.data.presets import PRESETS, Preset, get_preset
from raypriv.method.data.types import (SBU_ACTIONS, SBU_PAIRS, SPLITS, RunData, Sample, TaskData, as_run_data,
                                       collate)
from raypriv.method.tasks import MULTICLASS, MULTILABEL, Task


@dataclass(frozen=True)
class DatasetInfo:
    """What is known of a data set before it is loaded."""

    privacy_task: Task | None  # the task its privacy labels pose; None: it has none (a task set only)
    images: bool  # its items are single images (one-frame clips), not videos


DATASET_INFO = {
    "sbu": DatasetInfo(MULTICLASS, images=False),
    "ucf101": DatasetInfo(None, images=False),
    "vispr": DatasetInfo(MULTILABEL, images=True),
}
DATASETS = tuple(DATASET_INFO)

__all__ = [
    "DATASETS", "DATASET_INFO", "PRESETS", "Preset", "RunData", "SBU_ACTIONS", "SBU_PAIRS", "SPLITS", "Sample",
    "TaskData", "as_run_data", "build_dataset", "clip_tensor", "collate", "get_preset", "load_run_data",
    "privacy_dataset_of", "split_tensors",
]


def build_dataset(
    name: str,
    split: str,
    *,
    synthetic: bool = False,
    preset: str | Preset = "laptop",
    seed: int = 0,
    root: str | Path | None = None,
    fold: int = 1,
    subset: str = "vispr17",
) -> Dataset:
    """Build dataset `name` ("sbu", "ucf101" or "vispr") for `split` ("train" | "val" | "test").

    synthetic: use the procedurally generated stand-in instead of files on disk.
    preset: clip size (frames, height, width) and, for the synthetic sets, items per split.
    seed: draws the synthetic items' nuisances (position, lighting, noise, speed, ...) and the
        real sets' split assignment (SBU's sequences, UCF-101's validation groups); the 13
        synthetic SBU identities' appearance does not change with it.
    root: the real data's folder or `s3://bucket/prefix` (default: $RAYPRIV_SBU_ROOT,
        $RAYPRIV_UCF101_ROOT, $RAYPRIV_VISPR_ROOT).
    fold: UCF-101's official split, 1-3. subset: VISPR's attributes, vispr17 | vispr7 | all.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    preset = get_preset(preset)
    if name == "sbu":
        if synthetic:
            from raypriv.method.data.synthetic import SyntheticSBU

            return SyntheticSBU(split, preset=preset, seed=seed)
        from raypriv.method.data.sbu import SBUKinect

        return SBUKinect(split, preset=preset, seed=seed, root=root)
    if synthetic:
        from raypriv.method.data.world import SyntheticUCF101, SyntheticVISPR

        return (SyntheticUCF101 if name == "ucf101" else SyntheticVISPR)(split, preset=preset, seed=seed)
    if name == "ucf101":
        from raypriv.method.data.ucf101 import UCF101

        return UCF101(split, preset=preset, seed=seed, root=root, fold=fold)
    from raypriv.method.data.vispr import VISPR

    return VISPR(split, preset=preset, root=root, subset=subset)


def clip_tensor(ds: Dataset) -> torch.Tensor:
    """A whole split's clips in memory as uint8 `[N, 3, T, H, W]` (uint8 keeps a laptop split near 100 MiB)."""
    if hasattr(ds, "tensors"):  # rendered (synthetic) or decoded (UCF-101, VISPR) straight into uint8
        return ds.tensors()[0]
    return torch.stack([(ds[i].clip * 255).round_().to(torch.uint8) for i in range(len(ds))])


def split_tensors(ds: Dataset) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A whole split of a set with both labels (SBU): (uint8 clips `[N, 3, T, H, W]`, actions `[N]`,
    identities `[N]`). Training and evaluation draw batches from these."""
    return clip_tensor(ds), torch.as_tensor(ds.actions), torch.as_tensor(ds.identities)


def privacy_dataset_of(data) -> str:
    """The data set carrying the privacy labels of a run-config `data` section."""
    return data.privacy_dataset or data.dataset


def load_run_data(data, *, synthetic: bool, root: str | Path | None = None) -> RunData:
    """Every split of a run-config `data` section (`raypriv.method.config.DataConfig`) in memory.

    One data set with both labels (SBU) gives `shared` data; a task set plus a privacy set
    (`data.privacy_dataset`) gives each task its own clips: the target set's `actions` and the
    privacy set's multi-hot `attributes`. Both sets read the same `root` (each may sit in its own
    subfolder, `ROOT/ucf101` and `ROOT/vispr`).
    """
    def build(name: str, split: str) -> Dataset:
        return build_dataset(name, split, synthetic=synthetic, preset=data.preset, seed=data.seed, root=root,
                             fold=data.ucf101_fold, subset=data.vispr_subset)

    if data.privacy_dataset is None:
        sets = {s: build(data.dataset, s) for s in SPLITS}
        first = sets["train"]
        return RunData.from_splits({s: split_tensors(ds) for s, ds in sets.items()}, first.num_actions,
                                   first.num_identities)
    videos = {s: build(data.dataset, s) for s in SPLITS}
    images = {s: build(data.privacy_dataset, s) for s in SPLITS}
    target = TaskData({s: (clip_tensor(ds), ds.actions) for s, ds in videos.items()}, MULTICLASS,
                      videos["train"].num_actions, tuple(videos["train"].action_names))
    privacy = TaskData({s: (clip_tensor(ds), ds.attributes) for s, ds in images.items()},
                       DATASET_INFO[data.privacy_dataset].privacy_task,
                       images["train"].num_attributes, tuple(images["train"].attribute_names))
    return RunData(target, privacy, shared=False)
