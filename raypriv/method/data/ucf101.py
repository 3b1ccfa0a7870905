"""UCF-101: the real action videos of the paper's second setting (section 4.2), as fixed-length clips.

Expected layout (what the official archives `UCF101.rar` and
`UCF101TrainTestSplits-RecognitionTask.zip` unpack to):

    ROOT/
      ucfTrainTestlist/
        classInd.txt          one "INDEX CLASS" per line, INDEX 1..101: "1 ApplyEyeMakeup"
        trainlist01.txt       one "CLASS/FILE.avi INDEX" per line:
                                "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
        testlist01.txt        one "CLASS/FILE.avi" per line (the class is the folder)
        trainlist02.txt ...   folds 2 and 3 alike
      UCF-101/                the class folders; they may also sit directly in ROOT
        ApplyEyeMakeup/
          v_ApplyEyeMakeup_g08_c01.avi    vCLASS_gGG_cCC: group GG (01..25), clip CC of the group
          ...

ROOT is the `root` argument, else `$RAYPRIV_UCF101_ROOT`; either may be a local folder or
`s3://bucket/prefix` (mirrored into the local cache first), and either may hold the layout in a
`ucf101/` folder (a root shared with VISPR, `ROOT/ucf101` and `ROOT/vispr`).

Splits: `fold` (1-3) picks the official lists; test is `testlist0K.txt`. Validation is carved out
of `trainlist0K.txt` by group: the group numbers of the training list are shuffled with `seed`
and about 15 % of them (at least one) become validation, for every class, so no group (the same
people, background and viewpoint) is seen in two splits, as the official test split does it.

Clips: one clip per video, `preset.frames` frames spread evenly over the whole video (the action
from start to end; a video shorter than that repeats frames), resized (bilinear, antialiased) to
`preset.height x preset.width`. Videos are decoded with PyAV (FFmpeg); a file that does not decode
is an error naming it.
"""

from __future__ import annotations

import os
import random
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from raypriv.method.data.presets import Preset, get_preset
from raypriv.method.data.roots import resolve_root
from raypriv.method.data.transforms import resize_frames
from raypriv.method.data.types import SPLITS, Sample

ROOT_ENV = "RAYPRIV_UCF101_ROOT"
VAL_GROUP_FRACTION = 0.15
LISTS = "ucfTrainTestlist"
_LAYOUT = (f"ROOT/{LISTS}/{{classInd.txt, trainlist0K.txt, testlist0K.txt}} and ROOT[/UCF-101]/CLASS/v_CLASS_gGG_cCC.avi "
           "(see the raypriv.method.data.ucf101 docstring)")
_GROUP_RE = re.compile(r"_g(\d+)_c\d+\.avi$", re.IGNORECASE)
_DECODE_THREADS = min(4, os.cpu_count() or 1)


@dataclass(frozen=True)
class UCFVideo:
    """One video: `name` as the split lists write it ("CLASS/FILE.avi")."""

    name: str
    path: Path
    action: int
    group: int


class UCF101(Dataset):
    """UCF-101 clips of one split; yields `Sample`s with float32 `[3, T, H, W]` clips and no identity (-1).

    Indexes the lists (and checks every listed file exists) at construction; decodes in
    `__getitem__`, or every clip at once in `tensors()` (kept in memory as uint8).
    """

    def __init__(self, split: str, *, preset: str | Preset = "laptop", seed: int = 0, root: str | Path | None = None,
                 fold: int = 1) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        if fold not in (1, 2, 3):
            raise ValueError(f"UCF-101 has folds 1, 2 and 3, got {fold}")
        self.split, self.fold, self.preset = split, fold, get_preset(preset)
        self.root = resolve_root(root, env=ROOT_ENV, name="UCF-101", layout=_LAYOUT, subfolder="ucf101")
        self.action_names = _read_classes(self.root / LISTS / "classInd.txt")
        self.num_actions = len(self.action_names)
        videos = _read_list(self.root, f"testlist0{fold}.txt" if split == "test" else f"trainlist0{fold}.txt",
                            self.action_names)
        if split != "test":
            val_groups = _val_groups({v.group for v in videos}, seed, fold)
            videos = [v for v in videos if (v.group in val_groups) == (split == "val")]
        if not videos:
            raise ValueError(f"split {split!r} of UCF-101 fold {fold} in {self.root} is empty")
        self.videos = videos
        self.actions = torch.tensor([v.action for v in videos], dtype=torch.int64)
        self._clips: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> Sample:
        clip = self.tensors()[0][index] if self._clips is not None else self._decode(self.videos[index])
        return Sample(clip=clip.float().div_(255), action=int(self.actions[index]), identity=-1)

    def tensors(self) -> tuple[torch.Tensor]:
        """The whole split as uint8 clips `[N, 3, T, H, W]` (decoded once, on a few threads)."""
        if self._clips is None:
            with ThreadPoolExecutor(_DECODE_THREADS) as pool:  # FFmpeg decodes outside the GIL
                self._clips = torch.stack(list(pool.map(self._decode, self.videos)))
        return (self._clips,)

    def _decode(self, video: UCFVideo) -> torch.Tensor:
        return decode_clip(video.path, self.preset.frames, (self.preset.height, self.preset.width))

    def __repr__(self) -> str:
        return (f"UCF101(split={self.split!r}, fold={self.fold}, root={str(self.root)!r}, videos={len(self)}, "
                f"preset={self.preset.name!r})")


def decode_clip(path: Path, frames: int, size: tuple[int, int]) -> torch.Tensor:
    """uint8 `[3, frames, H, W]`: `frames` frames spread evenly over the video at `path`, resized."""
    import av  # PyAV, only where videos are read

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            images = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    except (av.error.FFmpegError, IndexError, OSError, ValueError) as err:
        raise ValueError(f"cannot decode video {path} ({err}); expected a video file FFmpeg reads (UCF-101's .avi)") from err
    if not images:
        raise ValueError(f"cannot decode video {path}: it has no frames")
    picks = torch.linspace(0, len(images) - 1, frames).round().long().tolist()
    x = torch.from_numpy(np.stack([images[i] for i in picks])).permute(0, 3, 1, 2).float().div_(255)
    x = resize_frames(x, size).clamp_(0, 1)
    return (x * 255).round_().to(torch.uint8).transpose(0, 1).contiguous()


def _read_classes(path: Path) -> tuple[str, ...]:
    """classInd.txt: class names in index order (indices 1..K, each once)."""
    lines = _lines(path)
    classes: dict[int, str] = {}
    for number, line in lines:
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise ValueError(f"{path}, line {number}: expected 'INDEX CLASS', e.g. '1 ApplyEyeMakeup', got {line!r}")
        classes[int(parts[0])] = parts[1]
    if sorted(classes) != list(range(1, len(classes) + 1)):
        raise ValueError(f"{path}: class indices must be 1..{len(classes)} each once, got {sorted(classes)}")
    return tuple(classes[i] for i in range(1, len(classes) + 1))


def _read_list(root: Path, name: str, classes: tuple[str, ...]) -> list[UCFVideo]:
    """A split list: every video with its class (from its folder; checked against a given index)."""
    path = root / LISTS / name
    index = {c: i for i, c in enumerate(classes)}
    videos_dir = root / "UCF-101" if (root / "UCF-101").is_dir() else root
    videos = []
    for number, line in _lines(path):
        parts = line.split()
        folder, _, file = parts[0].partition("/")
        group = _GROUP_RE.search(file)
        if folder not in index or not group or len(parts) > 2:
            raise ValueError(f"{path}, line {number}: expected 'CLASS/v_CLASS_gGG_cCC.avi [INDEX]' with a class "
                             f"of classInd.txt, got {line!r}")
        if len(parts) == 2 and parts[1] != str(index[folder] + 1):
            raise ValueError(f"{path}, line {number}: index {parts[1]} is not {folder}'s ({index[folder] + 1} "
                             "in classInd.txt)")
        video = videos_dir / folder / file
        if not video.is_file():
            raise FileNotFoundError(f"{path}, line {number}: video {video} does not exist")
        videos.append(UCFVideo(parts[0], video, index[folder], int(group[1])))
    return videos


def _lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the non-blank lines of a split file; FileNotFoundError naming it."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"UCF-101 split file {path} does not exist; expected {_LAYOUT}") from None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _val_groups(groups: set[int], seed: int, fold: int) -> set[int]:
    """The training list's groups that become validation: ~15 % (at least one, never all)."""
    ordered = sorted(groups)
    if len(ordered) < 2:
        return set()
    random.Random(f"raypriv-ucf101-val:{seed}:{fold}").shuffle(ordered)
    count = min(len(ordered) - 1, max(1, round(VAL_GROUP_FRACTION * len(ordered))))
    return set(ordered[:count])
