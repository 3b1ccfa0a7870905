"""SBU Kinect Interaction (v2.0): the real two-person interaction videos, as fixed-length RGB clips.

Expected layout (what the dataset's per-pair archives unpack to; only the RGB frames are read):

    ROOT/
      s01s02/                 participant pair: 21 folders, sXXsYY with XX, YY in 01..07
        01/                   action 01..08, in SBU's numbering (= the order of SBU_ACTIONS):
          001/                  01 approaching   02 departing   03 kicking      04 pushing
            rgb_000001.png      05 shaking hands 06 hugging     07 exchanging   08 punching
            rgb_000002.png    one recorded sequence; its frames, in numeric order
            ...
            depth_000001.png  ignored
            skeleton_pos.txt  ignored
          002/
        02/ ...
      s02s01/ ...             the same two people as s01s02, so the same identity

Labels: action = folder number - 1; identity = index of the UNORDERED pair in `SBU_PAIRS`
(13 pairs). Hidden entries (`.DS_Store`) and `__MACOSX` folders are skipped; loose files beside
the folders are ignored. ROOT is the `root` argument, else `$RAYPRIV_SBU_ROOT`; either may be a
local folder or `s3://bucket/prefix`, which is first mirrored into the local cache
(`raypriv.method.data.storage.sync_s3_prefix`).

Clips: each sequence is cut into non-overlapping windows of `preset.frames` consecutive frames
(trailing frames that do not fill a window are dropped); a sequence shorter than that gives one
clip padded by repeating its last frame. Frames are resized (bilinear, antialiased) to
`preset.height x preset.width`.

Splits: by sequence, never by clip, so no recording is seen in two splits. Each identity's
sequences are shuffled with `seed` and divided ~60/15/25 (train/val/test); an identity with at
least 3 sequences appears in every split.
"""

from __future__ import annotations

import math
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from raypriv.method.data.presets import Preset, get_preset
from raypriv.method.data.roots import SYNTHETIC_HINT, resolve_root
from raypriv.method.data.transforms import resize_frames
from raypriv.method.data.types import SBU_ACTIONS, SBU_PAIRS, SPLITS, Sample

ROOT_ENV = "RAYPRIV_SBU_ROOT"
SPLIT_FRACTIONS = {"train": 0.60, "val": 0.15, "test": 0.25}

_PAIR_RE = re.compile(r"^s(\d{2})s(\d{2})$")
_FRAME_RE = re.compile(r"^rgb_(\d+)\.png$")
_PAIR_INDEX = {pair: index for index, pair in enumerate(SBU_PAIRS)}
_LAYOUT = "ROOT/sXXsYY/AA/NNN/rgb_NNNNNN.png (see the raypriv.method.data.sbu docstring)"


@dataclass(frozen=True)
class SBUSequence:
    """One recording: `name` is its path relative to ROOT, e.g. "s01s02/01/001"."""

    name: str
    frames: tuple[Path, ...]
    action: int
    identity: int


@dataclass(frozen=True)
class SBUClip:
    """One clip: exactly T frame paths (the last repeated if the sequence is short)."""

    sequence: str
    frames: tuple[Path, ...]
    action: int
    identity: int


class SBUKinect(Dataset):
    """SBU Kinect Interaction clips for one split; yields `Sample`s with float32 `[3, T, H, W]` clips.

    Indexes the files at construction and decodes frames only in `__getitem__`.
    `actions` / `identities` are int64 tensors of every clip's labels (for class counts).
    """

    num_actions = len(SBU_ACTIONS)
    num_identities = len(SBU_PAIRS)

    def __init__(
        self,
        split: str,
        *,
        preset: str | Preset = "laptop",
        seed: int = 0,
        root: str | Path | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        self.split = split
        self.preset = get_preset(preset)
        self.root = _resolve_root(root)
        every_sequence = _scan_sequences(self.root)
        self.sequences = _assign_splits(every_sequence, seed)[split]
        if not self.sequences:
            raise ValueError(
                f"split {split!r} of {self.root} is empty: {len(every_sequence)} sequences in all; "
                "an identity needs at least 3 sequences to appear in every split"
            )
        self.clips = [
            SBUClip(seq.name, window, seq.action, seq.identity)
            for seq in self.sequences
            for window in _windows(seq.frames, self.preset.frames)
        ]
        self.actions = torch.tensor([clip.action for clip in self.clips], dtype=torch.int64)
        self.identities = torch.tensor([clip.identity for clip in self.clips], dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> Sample:
        clip = self.clips[index]
        size = (self.preset.height, self.preset.width)
        # Padded clips repeat their last frame: decode each distinct file once.
        decoded = {path: _load_frame(path, size) for path in dict.fromkeys(clip.frames)}
        video = torch.stack([decoded[path] for path in clip.frames], dim=1)
        return Sample(clip=video, action=clip.action, identity=clip.identity)

    def __repr__(self) -> str:
        return (f"SBUKinect(split={self.split!r}, root={str(self.root)!r}, "
                f"sequences={len(self.sequences)}, clips={len(self)}, preset={self.preset.name!r})")


def _resolve_root(root: str | Path | None) -> Path:
    return resolve_root(root, env=ROOT_ENV, name="SBU Kinect", layout=_LAYOUT)


def _scan_sequences(root: Path) -> list[SBUSequence]:
    pair_dirs = _subfolders(root)
    if not any(_PAIR_RE.match(folder.name) for folder in pair_dirs):
        raise FileNotFoundError(
            f"{root} has no participant-pair folders (sXXsYY, e.g. s01s02); expected {_LAYOUT}; "
            f"{SYNTHETIC_HINT}"
        )
    sequences = []
    for pair_dir in pair_dirs:
        identity = _identity(pair_dir)
        for action_dir in _subfolders(pair_dir):
            action = _action(action_dir)
            for sequence_dir in _subfolders(action_dir):
                numbered = sorted(
                    (int(match[1]), entry)
                    for entry in sequence_dir.iterdir()
                    if (match := _FRAME_RE.match(entry.name)) and entry.is_file()
                )
                if not numbered:
                    raise FileNotFoundError(
                        f"sequence folder {sequence_dir} has no RGB frames; expected rgb_000001.png, "
                        "rgb_000002.png, ..."
                    )
                name = sequence_dir.relative_to(root).as_posix()
                sequences.append(SBUSequence(name, tuple(p for _, p in numbered), action, identity))
    return sequences


def _subfolders(folder: Path) -> list[Path]:
    # Archives unpacked on macOS carry .DS_Store files and __MACOSX folders; they are not data.
    return sorted(
        entry for entry in folder.iterdir()
        if entry.is_dir() and not entry.name.startswith(".") and entry.name != "__MACOSX"
    )


def _identity(pair_dir: Path) -> int:
    match = _PAIR_RE.match(pair_dir.name)
    if not match:
        raise ValueError(
            f"unexpected folder {pair_dir}: expected a participant pair named sXXsYY, e.g. s01s02"
        )
    pair = tuple(sorted((int(match[1]), int(match[2]))))
    if pair not in _PAIR_INDEX:
        known = ", ".join(f"s{a:02d}s{b:02d}" for a, b in SBU_PAIRS)
        raise ValueError(f"pair folder {pair_dir} is not one of SBU's 13 pairs ({known}, in either order)")
    return _PAIR_INDEX[pair]


def _action(action_dir: Path) -> int:
    name = action_dir.name
    if re.fullmatch(r"\d{2}", name) and 1 <= int(name) <= len(SBU_ACTIONS):
        return int(name) - 1
    hint = "; it looks like a nested copy of the pair folder: move its contents up one level" \
        if _PAIR_RE.match(name) else ""
    raise ValueError(f"unexpected folder {action_dir}: expected an action folder 01..08{hint}")


def _assign_splits(sequences: list[SBUSequence], seed: int) -> dict[str, list[SBUSequence]]:
    by_identity: dict[int, list[SBUSequence]] = defaultdict(list)
    for sequence in sorted(sequences, key=lambda s: s.name):
        by_identity[sequence.identity].append(sequence)
    splits: dict[str, list[SBUSequence]] = {name: [] for name in SPLITS}
    for identity, group in sorted(by_identity.items()):
        # A string seed keeps the shuffle independent of Python's hash randomisation and of how
        # many identities happen to be present.
        random.Random(f"raypriv-sbu-split:{seed}:{identity}").shuffle(group)
        n_val, n_test = _split_sizes(len(group))
        splits["val"] += group[:n_val]
        splits["test"] += group[n_val:n_val + n_test]
        splits["train"] += group[n_val + n_test:]
    return splits


def _split_sizes(n: int) -> tuple[int, int]:
    """(val, test) sequence counts for an identity with `n` sequences; train gets the rest."""
    if n < 3:
        return 0, max(n - 1, 0)  # too few for all three splits: train first, then test
    # Round half up, and at least one each, so small identities still reach val and test.
    val, test = (max(1, math.floor(SPLIT_FRACTIONS[split] * n + 0.5)) for split in ("val", "test"))
    return val, test


def _windows(frames: tuple[Path, ...], length: int) -> list[tuple[Path, ...]]:
    if len(frames) < length:
        return [frames + (frames[-1],) * (length - len(frames))]
    return [frames[start:start + length] for start in range(0, len(frames) - length + 1, length)]


def _load_frame(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """float32 `[3, H, W]` in [0, 1]."""
    try:
        with Image.open(path) as image:
            pixels = np.array(image.convert("RGB"))
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read frame {path} ({err}); expected an RGB PNG image") from err
    frame = torch.from_numpy(pixels).permute(2, 0, 1).float().div_(255)
    return resize_frames(frame[None], size)[0].clamp_(0, 1)
