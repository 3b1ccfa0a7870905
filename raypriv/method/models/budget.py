"""The budget / attacker zoo f_b: per-frame 2-D classifiers with logits averaged over frames.

Wu et al. attack the degraded video with image classifiers: each frame is classified on its
own and the frame logits are averaged, so identity evidence from any frame counts. The same zoo
serves twice: as the budget ensemble during adversarial training and as the fresh attackers of
the two-fold evaluation. Keeping the two apart is done by `ModelSpec.family`, so every entry's
family names its architecture family (resnet, mobilenet_v2, ...), never its size.

Torchvision's ImageNet architectures are adapted once, generically, by `adapt_stem`: the first
convolution takes `in_channels` and (for small frames, 16×16 to 112×112) stride 1, and a
max-pool right after it is dropped, CIFAR-style, so tiny frames keep their spatial extent.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torchvision

from raypriv.method.models.registry import Registry

_ConvNd = (nn.Conv2d, nn.Conv3d)


class FrameAveraged(nn.Module):
    """Run a 2-D classifier on every frame of `[B, C, T, H, W]` and average its logits over T.

    Images `[B, C, H, W]` are accepted as one-frame clips, so the same model can attack image
    data sets (VISPR) and video ones.
    """

    def __init__(self, image_model: nn.Module) -> None:
        super().__init__()
        self.image_model = image_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            return self.image_model(x)
        if x.dim() != 5:
            raise ValueError(f"budget model expects [B, C, T, H, W] or [B, C, H, W], got shape {tuple(x.shape)}")
        batch, channels, frames, height, width = x.shape
        logits = self.image_model(x.transpose(1, 2).reshape(batch * frames, channels, height, width))
        return logits.reshape(batch, frames, -1).mean(dim=1)


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, module)


def adapt_stem(model: nn.Module, *, in_channels: int, stride: int | tuple[int, ...] | None = None) -> nn.Module:
    """Rebuild `model`'s first convolution for `in_channels` (and `stride`, when given), in place.

    The new weights cycle the old ones over input channels rather than re-initialising, so the
    architecture keeps its own initialisation scheme and stays reproducible under a seed. When
    `stride` is given and a max-pool follows the first convolution before any other one (the
    ResNet-style stem), that pool is replaced by `nn.Identity` too. Works for Conv2d and Conv3d
    (the video models in `raypriv.method.models.target` reuse it).
    """
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, _ConvNd)]
    if not convs:
        raise ValueError(f"{type(model).__name__} has no convolution to adapt")
    name, conv = convs[0]
    if conv.in_channels != in_channels or stride is not None:
        new = type(conv)(
            in_channels, conv.out_channels, conv.kernel_size, stride=stride or conv.stride, padding=conv.padding,
            dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None, padding_mode=conv.padding_mode,
        )
        with torch.no_grad():
            new.weight.copy_(conv.weight[:, [i % conv.in_channels for i in range(in_channels)]])
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
        _set_submodule(model, name, new)
    if stride is not None:
        second_conv = convs[1][0] if len(convs) > 1 else None
        for pool_name, module in model.named_modules():
            if pool_name == second_conv:
                break
            if isinstance(module, (nn.MaxPool2d, nn.MaxPool3d)):
                _set_submodule(model, pool_name, nn.Identity())
                break
    return model


MIN_BN_MOMENTUM = 0.1  # PyTorch's default; see build_torchvision


def build_torchvision(
    *, arch: str, num_classes: int, in_channels: int = 3, small_input: bool = True, **arch_kwargs: Any
) -> FrameAveraged:
    """Torchvision image classifier `arch` (random init), adapted and wrapped in `FrameAveraged`.

    `small_input=True` makes the stem stride 1 without max-pool (frames of 16-112 pixels);
    `False` keeps the ImageNet stem and only adapts `in_channels`.
    """
    model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **arch_kwargs)
    # MobileNetV3 (BatchNorm momentum 0.01) and MNASNet (0.0003) keep running statistics meant for
    # ImageNet-length training: trained from scratch for a few hundred steps, they stay near their
    # initial values and the model scores chance in eval mode (mobilenet_v3_small_075: 7.7 % on
    # raw laptop clips). Such a crippled budget model or attacker would flatter the degrader.
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.momentum is not None:
            module.momentum = max(module.momentum, MIN_BN_MOMENTUM)
    return FrameAveraged(adapt_stem(model, in_channels=in_channels, stride=1 if small_input else None))


class SmallCNN(nn.Module):
    """`depth` blocks of conv3×3 (+BN) + ReLU + max-pool, channels doubling from `width`."""

    def __init__(
        self, *, num_classes: int, in_channels: int = 3, depth: int = 3, width: int = 32, batch_norm: bool = True
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(depth):
            out = width * 2**i
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=not batch_norm)]
            layers += [nn.BatchNorm2d(out)] if batch_norm else []
            # ceil_mode keeps a 1×1 map at 1×1, so deep variants still run on 8×8 frames.
            layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


def build_small_cnn(
    *, num_classes: int, in_channels: int = 3, depth: int = 3, width: int = 32, batch_norm: bool = True
) -> FrameAveraged:
    image_model = SmallCNN(
        num_classes=num_classes, in_channels=in_channels, depth=depth, width=width, batch_norm=batch_norm
    )
    return FrameAveraged(image_model)


# name -> (torchvision architecture, family, extra constructor kwargs)
_TORCHVISION_ZOO: dict[str, tuple[str, str, dict[str, Any]]] = {
    "resnet18": ("resnet18", "resnet", {}),
    "resnet34": ("resnet34", "resnet", {}),
    "mobilenet_v2_035": ("mobilenet_v2", "mobilenet_v2", {"width_mult": 0.35}),
    "mobilenet_v2_050": ("mobilenet_v2", "mobilenet_v2", {"width_mult": 0.5}),
    "mobilenet_v2_100": ("mobilenet_v2", "mobilenet_v2", {"width_mult": 1.0}),
    "mobilenet_v3_small_075": ("mobilenet_v3_small", "mobilenet_v3", {"width_mult": 0.75}),
    "mobilenet_v3_small_100": ("mobilenet_v3_small", "mobilenet_v3", {"width_mult": 1.0}),
    "mobilenet_v3_large_100": ("mobilenet_v3_large", "mobilenet_v3", {"width_mult": 1.0}),
    "shufflenet_v2_x0_5": ("shufflenet_v2_x0_5", "shufflenet", {}),
    "shufflenet_v2_x1_0": ("shufflenet_v2_x1_0", "shufflenet", {}),
    "squeezenet1_1": ("squeezenet1_1", "squeezenet", {}),
    "efficientnet_b0": ("efficientnet_b0", "efficientnet", {}),
    "regnet_x_400mf": ("regnet_x_400mf", "regnet", {}),
    "regnet_y_400mf": ("regnet_y_400mf", "regnet", {}),
    "mnasnet0_5": ("mnasnet0_5", "mnasnet", {}),
    "densenet121": ("densenet121", "densenet", {}),
}

# name -> (family, depth, width, batch_norm, tiny)
_SMALL_CNNS: dict[str, tuple[str, int, int, bool, bool]] = {
    "smallcnn_tiny": ("smallcnn", 2, 4, True, True),
    "smallcnn_d2_w16": ("smallcnn", 2, 16, True, False),
    "smallcnn_d3_w16": ("smallcnn", 3, 16, True, False),
    "smallcnn_d3_w32": ("smallcnn", 3, 32, True, False),
    "smallcnn_d4_w64": ("smallcnn", 4, 64, True, False),
    "plaincnn_d3_w32": ("plaincnn", 3, 32, False, False),
}


def register(registry: Registry) -> None:
    """Add the budget / attacker entries to `registry` (called once by `raypriv.method.models`)."""
    for name, (arch, family, kwargs) in _TORCHVISION_ZOO.items():
        options = "".join(f", {k}={v}" for k, v in kwargs.items())
        registry.add(name, build_torchvision, family=family, arch=arch, **kwargs,
                     description=f"torchvision {arch}{options}, stride-1 stem, frame-averaged")
    for name, (family, depth, width, batch_norm, tiny) in _SMALL_CNNS.items():
        norm = "BatchNorm" if batch_norm else "no BatchNorm"
        registry.add(name, build_small_cnn, family=family, tiny=tiny, depth=depth, width=width, batch_norm=batch_norm,
                     description=f"{depth} conv blocks from width {width}, {norm}, frame-averaged")
