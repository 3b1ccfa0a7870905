"""The one sample type every raypriv dataset yields, its batch collation, and what a run holds in
memory: `RunData`, the target task's and the privacy task's splits as uint8 tensors."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterator, Mapping, Sequence

import torch

from raypriv.method.tasks import MULTICLASS, Task, task_of

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

    `clip` is float32 `[3, T, H, W]` in [0, 1] (an image is a one-frame clip, T = 1); `action`
    indexes the target task's classes (Y_T) and `identity` the privacy budget's classes (Y_B);
    either is -1 where the data set does not label it (UCF-101 has no identities, VISPR no
    actions). `attributes` is a float32 multi-hot `[K]` of privacy attributes where the data set
    has them (VISPR), else None. `face_mask` / `body_mask` are float32 `[T, H, W]` in [0, 1] where
    the dataset has them (the synthetic SBU set does), else None.
    A sample unpacks as `clip, action, identity = sample`. A batch (from `collate`) has the
    same fields with a leading batch dimension and `action` / `identity` as int64 tensors.
    """

    clip: torch.Tensor
    action: int | torch.Tensor
    identity: int | torch.Tensor
    face_mask: torch.Tensor | None = None
    body_mask: torch.Tensor | None = None
    attributes: torch.Tensor | None = None

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
        attributes=stack_masks("attributes"),
    )


# split -> (uint8 clips [N, C, T, H, W], labels): class indices [N] or multi-hot attributes [N, K]
Splits = Mapping[str, tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class TaskData:
    """One task's data: its splits, the `Task` its labels pose, and the class (attribute) count."""

    splits: Splits
    task: Task
    num_classes: int
    names: tuple[str, ...] = ()  # the classes' or attributes' names, where the data set has them

    def clips(self, split: str) -> torch.Tensor:
        return self.splits[split][0]

    def labels(self, split: str) -> torch.Tensor:
        return self.splits[split][1]


@dataclass(frozen=True)
class RunData:
    """What a run trains and is judged on: the target task's data (Y_T, videos of actions) and the
    privacy task's (Y_B).

    With `shared`, one data set carries both labels (SBU: every clip has an action and an actor
    pair): both tasks hold the same clip tensors and Algorithm 1 draws one batch for both. Without,
    they are two data sets that share only f_d (UCF-101 videos + VISPR images, Wu et al. section
    4.2): each pipeline draws its own batches.
    """

    target: TaskData
    privacy: TaskData
    shared: bool

    @classmethod
    def from_splits(cls, data: Mapping[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                    num_actions: int | None = None, num_identities: int | None = None) -> "RunData":
        """One data set's split -> (uint8 clips, actions, identities), as SBU's: both tasks on the same
        clips; class counts default to 1 + the largest label of any split."""
        target = {s: (clips, actions) for s, (clips, actions, _) in data.items()}
        privacy = {s: (clips, identities) for s, (clips, _, identities) in data.items()}
        count = lambda splits: 1 + max(int(labels.max()) for _, labels in splits.values())  # noqa: E731
        return cls(TaskData(target, MULTICLASS, num_actions or count(target)),
                   TaskData(privacy, task_of(next(iter(privacy.values()))[1]), num_identities or count(privacy)),
                   shared=True)

    def triples(self) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """split -> (clips, actions, identities): the one-data-set form (`shared` data only)."""
        if not self.shared:
            raise ValueError("the target and privacy tasks are on different data sets: there is no "
                             "(clips, actions, identities) split")
        return {s: (clips, actions, self.privacy.labels(s)) for s, (clips, actions) in self.target.splits.items()}

    def with_clips(self, change: Callable[[torch.Tensor], torch.Tensor]) -> "RunData":
        """A copy with `change` applied to every clip tensor once (shared tensors stay shared)."""
        done: dict[int, torch.Tensor] = {}

        def once(clips: torch.Tensor) -> torch.Tensor:
            if id(clips) not in done:
                done[id(clips)] = change(clips)
            return done[id(clips)]

        def mapped(data: TaskData) -> TaskData:
            return replace(data, splits={s: (once(c), y) for s, (c, y) in data.splits.items()})

        return replace(self, target=mapped(self.target), privacy=mapped(self.privacy))


def as_run_data(data: "RunData | Mapping[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]",
                num_actions: int | None = None, num_identities: int | None = None) -> RunData:
    """`data` as `RunData`: as it is, or one data set's split -> (clips, actions, identities)."""
    return data if isinstance(data, RunData) else RunData.from_splits(data, num_actions, num_identities)
