"""The target model f_T: video classifiers `[B, C, T, H, W] -> [B, num_classes]` for the action.

Wu et al. use C3D (Tran et al., 2015) as f_T. `C3D` keeps its convolution trunk (channels
w, 2w, 4w, 8w, 8w with 1, 1, 2, 2, 2 convolutions per stage) scaled by `width`, but replaces
the last pool and the 4096-wide fully connected layers by global average pooling and one linear
layer, so it runs on any clip size. Torchvision's 3-D ResNets are registered alongside as
stronger, better-known targets.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torchvision

from raypriv.method.models.budget import adapt_stem
from raypriv.method.models.registry import Registry

_C3D_STAGES = ((1, 1), (2, 1), (4, 2), (8, 2), (8, 2))  # (channel multiple of width, convolutions)


class C3D(nn.Module):
    """C3D trunk of `num_stages` stages (conv3d 3×3×3 + BN + ReLU), global pool, linear."""

    def __init__(
        self, *, num_classes: int, in_channels: int = 3, width: int = 64, num_stages: int = 5, stem_stride: int = 1
    ) -> None:
        super().__init__()
        if not 1 <= num_stages <= len(_C3D_STAGES):
            raise ValueError(f"num_stages must be in 1..{len(_C3D_STAGES)}, got {num_stages}")
        layers: list[nn.Module] = []
        channels = in_channels
        for stage, (multiple, num_convs) in enumerate(_C3D_STAGES[:num_stages]):
            for conv in range(num_convs):
                out = width * multiple
                # A strided stem (stem_stride > 1) cuts the cost of every later layer by stem_stride^2.
                stride = (1, stem_stride, stem_stride) if stage == conv == 0 else 1
                layers += [
                    nn.Conv3d(channels, out, 3, stride=stride, padding=1, bias=False),
                    nn.BatchNorm3d(out),
                    nn.ReLU(True),
                ]
                channels = out
            if stage < num_stages - 1:
                # C3D keeps time intact in the first pool so early layers see motion at full rate;
                # ceil_mode keeps size-1 dimensions alive, so 4-frame 16×16 clips still run.
                layers.append(nn.MaxPool3d((1, 2, 2) if stage == 0 else 2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3, 4)))


def build_c3d(
    *, num_classes: int, in_channels: int = 3, width: int = 64, num_stages: int = 5, stem_stride: int = 1
) -> C3D:
    return C3D(
        num_classes=num_classes, in_channels=in_channels, width=width, num_stages=num_stages, stem_stride=stem_stride
    )


def build_video_resnet(*, arch: str, num_classes: int, in_channels: int = 3, small_input: bool = False) -> nn.Module:
    """Torchvision video ResNet `arch` (random init) with its stem adapted to `in_channels`.

    The stock stem (spatial stride 2) already runs on 8×16×16 clips, and keeping it bounds the
    cost on 112×112 clips; `small_input=True` makes it stride 1 for very small frames.
    """
    model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
    return adapt_stem(model, in_channels=in_channels, stride=(1, 1, 1) if small_input else None)


def register(registry: Registry) -> None:
    """Add the target entries to `registry` (called once by `raypriv.method.models`)."""
    registry.add("c3d_tiny", build_c3d, family="c3d", tiny=True, width=4, num_stages=3,
                 description="test-sized C3D (width 4, 3 stages)")
    registry.add("c3d_lite", build_c3d, family="c3d", width=16, num_stages=4, stem_stride=2,
                 description="4-stage C3D at width 16 with a stride-2 stem: trains on a 2-core CPU in minutes")
    registry.add("c3d_small", build_c3d, family="c3d", width=16,
                 description="C3D trunk at a quarter width (16) for quick sweeps")
    registry.add("c3d", build_c3d, family="c3d", width=64,
                 description="C3D convolution trunk as in Tran et al. / Wu et al. (width 64), pooled head")
    for arch in ("r3d_18", "mc3_18", "r2plus1d_18"):
        registry.add(arch, build_video_resnet, family="resnet3d", arch=arch,
                     description=f"torchvision {arch}, stem adapted to in_channels")
