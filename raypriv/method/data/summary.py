"""Human-readable summaries of a dataset: class balance and a contact sheet of clips."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset


def summarise(ds: Dataset) -> str:
    """One line: size, clip shape and per-class counts (min-max) for actions and identities."""
    actions = torch.as_tensor(ds.actions)
    identities = torch.as_tensor(ds.identities)
    clip = ds[0].clip if len(ds) else torch.empty(0)
    a = torch.bincount(actions, minlength=ds.num_actions)
    b = torch.bincount(identities, minlength=ds.num_identities)
    return (
        f"{len(ds):5d} clips of {list(clip.shape)}; "
        f"{ds.num_actions} actions x {int(a.min())}-{int(a.max())} clips, "
        f"{ds.num_identities} identities x {int(b.min())}-{int(b.max())} clips"
    )


def contact_sheet(ds: Dataset, path: Path, frames: int = 6, zoom: int = 3) -> None:
    """PNG with one row per action (its first clip), `frames` frames spread over the clip."""
    from PIL import Image

    actions = torch.as_tensor(ds.actions)
    rows = []
    for action in range(ds.num_actions):
        hits = (actions == action).nonzero()
        if len(hits) == 0:
            continue
        clip = ds[int(hits[0])].clip  # [3, T, H, W]
        picks = torch.linspace(0, clip.shape[1] - 1, min(frames, clip.shape[1])).round().long()
        rows.append(torch.cat([clip[:, int(t)] for t in picks], dim=2))
    sheet = (torch.cat(rows, dim=1).clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    image = Image.fromarray(sheet)
    image = image.resize((image.width * zoom, image.height * zoom), Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
