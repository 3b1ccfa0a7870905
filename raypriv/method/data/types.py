"""The one sample type every raypriv dataset yields, and its batch collation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

SPLITS = ("train", "val", "test")

# SBU Kinect Interaction's label structure; the synthetic stand-in uses the same names and order.
SBU_ACTIONS = (
    "approaching",
    "departing",
    "kicking",
    "pushing",
    "shaking_hands",
    "hugging",
    "exchanging",
    "punching",
)
# The 13 unordered actor pairs of SBU (participants s01..s07); the identity label is the index here.
SBU_PAIRS = (
    (1, 2), (1, 3), (1, 7), (2, 3), (2, 4), (2, 5), (2, 6),
    (2, 7), (3, 4), (3, 5), (3, 6), (3, 7), (4, 6),
)


@dataclass(frozen=True)
class Sample:
    """One clip with its labels.

    `clip` is float32 `[3, T, H, W]` in [0, 1]; `action` indexes the target task's classes (Y_T)
    and `identity` the privacy budget's classes (Y_B). `face_mask` / `body_mask` are float32
    `[T, H, W]` in [0, 1] where the dataset has them (the synthetic set does), else None.
    A sample unpacks as `clip, action, identity = sample`. A batch (from `collate`) has the
    same fields with a leading batch dimension and `action` / `identity` as int64 tensors.
    """

    clip: torch.Tensor
    action: int | torch.Tensor
    identity: int | torch.Tensor
    face_mask: torch.Tensor | None = None
    body_mask: torch.Tensor | None = None

    def __iter__(self) -> Iterator:
        return iter((self.clip, self.action, self.identity))


def collate(samples: Sequence[Sample]) -> Sample:
    """Stack samples into a batch `Sample`; use as `DataLoader(..., collate_fn=collate)`."""
    if not samples:
        raise ValueError("collate() needs at least one sample")

    def stack_masks(attr: str) -> torch.Tensor | None:
        masks = [getattr(s, attr) for s in samples]
        return torch.stack(masks) if all(m is not None for m in masks) else None

    return Sample(
        clip=torch.stack([s.clip for s in samples]),
        action=torch.as_tensor([int(s.action) for s in samples], dtype=torch.int64),
        identity=torch.as_tensor([int(s.identity) for s in samples], dtype=torch.int64),
        face_mask=stack_masks("face_mask"),
        body_mask=stack_masks("body_mask"),
    )
