"""The table `raypriv models` prints: every registered model with its cost at a preset's size."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from raypriv.method.data.presets import get_preset
from raypriv.method.data.types import SBU_ACTIONS, SBU_PAIRS
from raypriv.method.models import count_parameters, create_model, list_models

_CLASSES = {"target": len(SBU_ACTIONS), "budget": len(SBU_PAIRS)}


def model_table(role: str | None = None, pattern: str = "*", preset: str = "laptop") -> str:
    """Name, role, family, parameters and forward GFLOPs for one clip of the preset's size."""
    p = get_preset(preset)
    # Run on the meta device: shapes and FLOPs without computing anything (building on meta
    # directly fails for regnet, whose constructor reads tensor values).
    clip = torch.zeros(1, 3, p.frames, p.height, p.width, device="meta")
    lines = [f"{'name':26s} {'role':9s} {'family':13s} {'params':>11s} {'GFLOP/clip':>10s}  "
             f"(clip 3x{p.frames}x{p.height}x{p.width}, preset {p.name})"]
    for spec in list_models(role, pattern):
        kwargs = {"num_classes": _CLASSES[spec.role]} if spec.role in _CLASSES else {}
        model = create_model(spec.role, spec.name, **kwargs).eval()
        params = count_parameters(model)
        model.to("meta")
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(clip)
        tiny = " (tiny, for tests)" if spec.tiny else ""
        lines.append(
            f"{spec.name:26s} {spec.role:9s} {spec.family:13s} {params:11,d} "
            f"{counter.get_total_flops() / 1e9:10.3f}{tiny}"
        )
    return "\n".join(lines)
