"""Human-readable summaries of a dataset: class balance and a contact sheet of clips."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset


def summarise(ds: Dataset) -> str:
    """One line: size, clip shape and the balance of every label the data set has: per-class counts
    (min-max) of actions and identities, and how many items carry each attribute (min-max)."""
    clip = ds[0].clip if len(ds) else torch.empty(0)
    parts = []
    for name, count in (("actions", "num_actions"), ("identities", "num_identities")):
        if hasattr(ds, name):
            per_class = torch.bincount(torch.as_tensor(getattr(ds, name)), minlength=getattr(ds, count))
            parts.append(f"{getattr(ds, count)} {name} x {int(per_class.min())}-{int(per_class.max())} clips")
    if hasattr(ds, "attribute_names") and hasattr(ds, "attributes"):
        per_attribute = torch.as_tensor(ds.attributes).sum(0)
        parts.append(f"{len(ds.attribute_names)} attributes on {int(per_attribute.min())}-{int(per_attribute.max())} items")
    return f"{len(ds):5d} clips of {list(clip.shape)}; " + ", ".join(parts)


def contact_sheet(ds: Dataset, path: Path, frames: int = 6, zoom: int = 3) -> None:
    """PNG with one row per action (its first clip, `frames` frames spread over it), or for a set of
    images without actions a grid of its first images."""
    from PIL import Image

    if hasattr(ds, "actions"):
        actions = torch.as_tensor(ds.actions)
        rows = []
        for action in range(ds.num_actions):
            hits = (actions == action).nonzero()
            if len(hits) == 0:
                continue
            clip = ds[int(hits[0])].clip  # [3, T, H, W]
            picks = torch.linspace(0, clip.shape[1] - 1, min(frames, clip.shape[1])).round().long()
            rows.append(torch.cat([clip[:, int(t)] for t in picks], dim=2))
    else:
        images = [ds[i].clip[:, 0] for i in range(min(len(ds), frames * frames))]
        rows = [torch.cat(images[i:i + frames], dim=2) for i in range(0, len(images) - frames + 1, frames)] \
            or [torch.cat(images, dim=2)]
    sheet = (torch.cat(rows, dim=1).clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    image = Image.fromarray(sheet)
    image = image.resize((image.width * zoom, image.height * zoom), Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
