"""The degrader f_d: a per-frame image-transformation network (Johnson et al., 2016).

Wu et al. learn f_d as the fully convolutional transformer of Johnson et al.: a 9×9 stem,
two stride-2 convolutions down, residual blocks, two ×2 up-samplings back and a 9×9 output
convolution. It is applied frame by frame (T folded into the batch), so one camera can degrade
a stream without buffering a clip, and its output is squashed to [0, 1] like the input.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from raypriv.method.models.registry import Registry

_NUM_DOWNSAMPLES = 2  # Johnson et al.'s design; the residual blocks run at 1/4 resolution


def _norm(channels: int) -> nn.GroupNorm:
    # GroupNorm, not BatchNorm: the degrader runs on a camera one clip at a time, so its output
    # must not depend on batch statistics or on train/eval mode.
    return nn.GroupNorm(math.gcd(8, channels), channels)


def _conv_block(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False),
        _norm(out_ch),
        nn.ReLU(inplace=True),
    )


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_block(channels, channels, 3),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _Upsample(nn.Module):
    """Nearest ×2 then conv: avoids the checkerboard artefacts of transposed convolutions."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = _conv_block(in_ch, out_ch, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Degrader(nn.Module):
    """f_d: clips `[B, C, T, H, W]` (or frames `[B, C, H, W]`) -> same layout with `out_channels`.

    Any H, W ≥ 8 works: stride-2 convolutions round sizes up, so the up-sampled map is at least
    H×W and is cropped back to exactly the input size.
    """

    def __init__(
        self, *, in_channels: int = 3, out_channels: int = 3, width: int = 32, num_res_blocks: int = 5,
        levels: int = 0, kernel: int = 9, stem_stride: int = 1, skip: bool = False,
    ) -> None:
        super().__init__()
        if levels == 1 or levels < 0:
            raise ValueError(f"levels must be 0 (continuous output) or >= 2, got {levels}")
        self.in_channels, self.out_channels, self.levels = in_channels, out_channels, levels
        self.quantise = True  # training may switch it off (e.g. reconstruction init); always on in eval
        widths = [width * 2**i for i in range(_NUM_DOWNSAMPLES + 1)]  # e.g. 32, 64, 128
        # stem_stride 2 runs the whole network at half resolution and up-samples (bilinear) just
        # before the head: on a CPU the full-resolution layers of a narrow f_d are memory-bound
        # and cost several times their FLOPs.
        self.stem_stride = stem_stride
        # skip adds the stem's feature map to the up-sampled one (a U-Net-style long skip): without
        # it every detail passes through the residual blocks at 1/4 of the stem's resolution (6×6 at
        # laptop size with a stride-2 stem), where a limb 1.3 px wide, and the action it carries, is lost.
        self.skip = skip
        self.stem = _conv_block(in_channels, widths[0], kernel, stride=stem_stride)
        self.down = nn.Sequential(*(_conv_block(a, b, 3, stride=2) for a, b in zip(widths, widths[1:])))
        self.res_blocks = nn.Sequential(*(_ResidualBlock(widths[-1]) for _ in range(num_res_blocks)))
        self.up = nn.Sequential(*(_Upsample(a, b) for a, b in zip(widths[:0:-1], widths[-2::-1])))
        self.head = nn.Conv2d(widths[0], out_channels, kernel, padding=kernel // 2)

    def forward_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Degrade independent frames `[N, C, H, W]` -> `[N, out_channels, H, W]` in [0, 1]."""
        height, width = frames.shape[-2:]
        stem = self.stem(frames)
        x = self.up(self.res_blocks(self.down(stem)))
        if self.skip:
            # The up-sampled map is the stem's size, or up to 3 larger where the stem's side is not a
            # multiple of 4; resizing (not cropping) it to exactly the stem's size keeps the sum's
            # shape one symbol, which `torch.export` needs for a dynamic frame size.
            x = F.interpolate(x, size=stem.shape[-2:], mode="nearest") + stem
        if self.stem_stride > 1:
            x = F.interpolate(x, scale_factor=float(self.stem_stride), mode="bilinear", align_corners=False)
        out = torch.sigmoid(self.head(x[..., :height, :width]))
        if self.levels and (self.quantise or not self.training):
            # Quantise to `levels` grey levels; the straight-through estimator passes the gradient
            # of the sigmoid. A few levels leave no room for the faint colour and texture residue
            # that an unquantised f_d keeps while fooling its own budget models (FACTS.md).
            steps = self.levels - 1
            out = out + (torch.round(out * steps) / steps - out).detach()
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            return self.forward_frames(x)
        if x.dim() != 5:
            raise ValueError(f"degrader expects [B, C, T, H, W] or [B, C, H, W], got shape {tuple(x.shape)}")
        batch, channels, frames, height, width = x.shape
        flat = x.transpose(1, 2).reshape(batch * frames, channels, height, width)
        out = self.forward_frames(flat)
        return out.reshape(batch, frames, self.out_channels, height, width).transpose(1, 2)


def build_degrader(
    *, in_channels: int = 3, out_channels: int = 3, width: int = 32, num_res_blocks: int = 5, levels: int = 0,
    kernel: int = 9, stem_stride: int = 1, skip: bool = False,
) -> Degrader:
    return Degrader(in_channels=in_channels, out_channels=out_channels, width=width, num_res_blocks=num_res_blocks,
                    levels=levels, kernel=kernel, stem_stride=stem_stride, skip=skip)


def register(registry: Registry) -> None:
    """Add the degrader entries to `registry` (called once by `raypriv.method.models`)."""
    family = "johnson"
    registry.add("degrader_tiny", build_degrader, family=family, tiny=True, width=4, num_res_blocks=1,
                 description="test-sized f_d (width 4, 1 residual block)")
    registry.add("degrader_small", build_degrader, family=family, width=16, num_res_blocks=3,
                 description="half-width f_d for quick sweeps (width 16, 3 residual blocks)")
    registry.add("degrader_base", build_degrader, family=family, width=32, num_res_blocks=5,
                 description="f_d as in Wu et al. / Johnson et al. (width 32, 5 residual blocks)")
    registry.add("degrader_mono", build_degrader, family=family, out_channels=1, width=16, num_res_blocks=3,
                 description="compact f_d emitting one channel, a third of the bandwidth of RGB")
    # Light, one-channel f_d for CPU runs: 5x5 stem and head (the 9x9 ones dominate the cost at
    # small widths), then either continuous, 4-level or binary output.
    lite = dict(out_channels=1, width=6, num_res_blocks=1, kernel=5)
    registry.add("degrader_lite", build_degrader, family=family, **lite,
                 description="light f_d emitting one continuous channel (width 6, 1 residual block, 5x5 ends)")
    half = dict(out_channels=1, width=8, num_res_blocks=2, kernel=5, stem_stride=2)
    registry.add("degrader_half_bin", build_degrader, family=family, **half, levels=2,
                 description="binary one-channel f_d that works at half resolution (width 8, 2 residual blocks)")
    registry.add("degrader_half_q4", build_degrader, family=family, **half, levels=4,
                 description="degrader_half_bin with 4 grey levels instead of 2")
    registry.add("degrader_half_q8", build_degrader, family=family, **half, levels=8,
                 description="degrader_half_bin with 8 grey levels instead of 2")
    registry.add("degrader_half", build_degrader, family=family, **half,
                 description="degrader_half_bin without quantisation (continuous grey output)")
    registry.add("degrader_skip_q4", build_degrader, family=family, **half, levels=4, skip=True,
                 description="degrader_half_q4 with a long skip from the stem to the up-sampled map (keeps thin limbs)")
    registry.add("degrader_skip_bin", build_degrader, family=family, **half, levels=2, skip=True,
                 description="degrader_skip_q4 with a binary output")
    registry.add("degrader_lite_q4", build_degrader, family=family, **lite, levels=4,
                 description="degrader_lite quantised to 4 grey levels")
    registry.add("degrader_lite_bin", build_degrader, family=family, **lite, levels=2,
                 description="degrader_lite quantised to a binary image")
