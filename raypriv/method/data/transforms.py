"""Clip and frame transforms shared by the data loaders, baselines and measurements."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def downsample(clips: torch.Tensor, factor: int) -> torch.Tensor:
    """Method 1 of the paper: spatial downsampling by `factor`, shown back at the input size.

    `clips` is `[B, C, T, H, W]`. Downsampling averages each `factor x factor` block (what a
    sensor with `factor`-times larger pixels records); nearest-neighbour upsampling restores the
    frame size so the same models read both. A size not divisible by `factor` keeps its last
    partial block (ceil), so nothing is cropped.
    """
    if factor < 1:
        raise ValueError(f"downsample factor must be >= 1, got {factor}")
    if factor == 1:
        return clips
    b, c, t, h, w = clips.shape
    frames = clips.transpose(1, 2).reshape(b * t, c, h, w)
    small = F.adaptive_avg_pool2d(frames, (-(-h // factor), -(-w // factor)))
    back = F.interpolate(small, size=(h, w), mode="nearest")
    return back.reshape(b, t, c, h, w).transpose(1, 2)


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """float frames `[N, C, H, W]` resized to `size` (bilinear, antialiased), as the loaders read
    real frames and images; unchanged when they already have that size."""
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    return F.interpolate(frames, size=size, mode="bilinear", antialias=True, align_corners=False)
