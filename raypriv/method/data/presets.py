"""Named clip-size presets shared by every dataset (frames T, height H, width W).

`clips_per_cell` only matters for the synthetic set: it is the number of clips per
(action, identity) cell in each split, so every split is exactly class-balanced.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from raypriv.method.data.types import SPLITS


@dataclass(frozen=True)
class Preset:
    name: str
    frames: int
    height: int
    width: int
    clips_per_cell: dict[str, int] = field(default_factory=lambda: {"train": 6, "val": 2, "test": 3})

    def __post_init__(self) -> None:
        for key in ("frames", "height", "width"):
            if getattr(self, key) < 1:
                raise ValueError(f"preset {self.name!r}: {key} must be >= 1, got {getattr(self, key)}")
        if set(self.clips_per_cell) != set(SPLITS) or min(self.clips_per_cell.values()) < 1:
            raise ValueError(
                f"preset {self.name!r}: clips_per_cell needs a count >= 1 for each of {SPLITS}, "
                f"got {self.clips_per_cell}"
            )

    def with_(self, **changes: Any) -> "Preset":
        """A copy with some fields changed, e.g. `PRESETS['laptop'].with_(frames=8)`."""
        return replace(self, **changes)


PRESETS: dict[str, Preset] = {
    # Unit tests: runs in milliseconds; too small for the downsampling property.
    "tiny": Preset("tiny", frames=8, height=16, width=16, clips_per_cell={"train": 1, "val": 1, "test": 1}),
    # A 2-core laptop trains on this in minutes; the `quick` profile's results (results/) use it.
    "laptop": Preset("laptop", frames=12, height=48, width=48, clips_per_cell={"train": 6, "val": 2, "test": 3}),
    # A sweep trial's data on a laptop (search_spaces/sbu.yaml, quick profile's `trial:`): about a
    # fifth of `laptop`'s pixels per epoch (8 frames of 32x32, 416 training clips).
    "small": Preset("small", frames=8, height=32, width=32, clips_per_cell={"train": 4, "val": 2, "test": 2}),
    # The paper's input size (16 frames of 112x112); for GPU clusters.
    "paper": Preset("paper", frames=16, height=112, width=112, clips_per_cell={"train": 12, "val": 3, "test": 6}),
}


def get_preset(preset: str | Preset) -> Preset:
    if isinstance(preset, Preset):
        return preset
    try:
        return PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}") from None
