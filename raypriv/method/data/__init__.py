"""Datasets: one entry point, `build_dataset(name, split, ...)`, for every dataset raypriv knows.

Every dataset is a `torch.utils.data.Dataset` of `Sample`s (see `raypriv.method.data.types`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from raypriv.method.data.presets import PRESETS, Preset, get_preset
from raypriv.method.data.types import SBU_ACTIONS, SBU_PAIRS, SPLITS, Sample, collate

DATASETS = ("sbu",)

__all__ = [
    "DATASETS", "PRESETS", "Preset", "SBU_ACTIONS", "SBU_PAIRS", "SPLITS", "Sample",
    "build_dataset", "collate", "get_preset", "split_tensors",
]


def build_dataset(
    name: str,
    split: str,
    *,
    synthetic: bool = False,
    preset: str | Preset = "laptop",
    seed: int = 0,
    root: str | Path | None = None,
) -> Dataset:
    """Build dataset `name` ("sbu") for `split` ("train" | "val" | "test").

    synthetic: use the procedurally generated stand-in instead of files on disk.
    preset: clip size (frames, height, width) and, for the synthetic set, clips per split.
    seed: draws the synthetic clips' nuisances (position, lighting, noise, speed, ...) and the
        real set's split assignment; the 13 synthetic identities' appearance does not change with it.
    root: the real data's folder or `s3://bucket/prefix` (default: $RAYPRIV_SBU_ROOT).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    preset = get_preset(preset)
    if synthetic:
        from raypriv.method.data.synthetic import SyntheticSBU

        return SyntheticSBU(split, preset=preset, seed=seed)
    from raypriv.method.data.sbu import SBUKinect

    return SBUKinect(split, preset=preset, seed=seed, root=root)


def split_tensors(ds: Dataset) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A whole split in memory: (uint8 clips `[N, 3, T, H, W]`, actions `[N]`, identities `[N]`).

    Training and evaluation draw batches from these; uint8 keeps a laptop split near 100 MiB.
    """
    if hasattr(ds, "tensors"):  # the synthetic set is rendered straight into uint8
        clips = ds.tensors()[0]
    else:
        clips = torch.stack([(ds[i].clip * 255).round_().to(torch.uint8) for i in range(len(ds))])
    return clips, torch.as_tensor(ds.actions), torch.as_tensor(ds.identities)
