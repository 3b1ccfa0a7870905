"""Contract tests over every registered model (degraders f_d, targets f_T, budgets f_b), and the registries.

Each contract is parametrised over `list_models()`, so a newly registered entry is tested
without touching this file.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from raypriv.method.models import (
    BUDGETS,
    DEGRADERS,
    REGISTRIES,
    TARGETS,
    ModelSpec,
    count_parameters,
    create_model,
    list_models,
)
from raypriv.method.models.budget import FrameAveraged


NUM_CLASSES = {"target": 8, "budget": 13}  # SBU: 8 actions, 13 actor pairs
ALL_SPECS = list_models()
TINY_SPECS = [s for s in ALL_SPECS if s.tiny]


def _id(spec: ModelSpec) -> str:
    return f"{spec.role}:{spec.name}"


def _build(spec: ModelSpec, *, in_channels: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    kwargs = {"num_classes": NUM_CLASSES[spec.role]} if spec.role in NUM_CLASSES else {}
    return create_model(spec.role, spec.name, in_channels=in_channels, **kwargs)


def _clip(in_channels: int = 3, frames: int = 4, height: int = 16, width: int = 16, batch: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(batch, in_channels, frames, height, width, generator=generator)


def _expected_shape(spec: ModelSpec, model: nn.Module, clip: torch.Tensor) -> tuple[int, ...]:
    if spec.role == "degrader":
        batch, _, frames, height, width = clip.shape
        return (batch, model.out_channels, frames, height, width)
    return (clip.shape[0], NUM_CLASSES[spec.role])


@pytest.mark.parametrize("spec", ALL_SPECS, ids=_id)
def test_forward_shape(spec: ModelSpec) -> None:
    # Targets must run on 8-frame clips of 16×16; everything else on 4-frame ones.
    clip = _clip(frames=8 if spec.role == "target" else 4)
    model = _build(spec).eval()
    with torch.no_grad():
        out = model(clip)
    assert out.shape == _expected_shape(spec, model, clip)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("spec", ALL_SPECS, ids=_id)
def test_forward_single_channel(spec: ModelSpec) -> None:
    # A one-channel degrader (degrader_mono) feeds one-channel targets and budgets.
    clip = _clip(in_channels=1)
    model = _build(spec, in_channels=1).eval()
    with torch.no_grad():
        assert model(clip).shape == _expected_shape(spec, model, clip)


@pytest.mark.parametrize("spec", list_models("degrader"), ids=_id)
@pytest.mark.parametrize("size", [(15, 17), (8, 8), (9, 11)])
def test_degrader_keeps_odd_sizes_and_range(spec: ModelSpec, size: tuple[int, int]) -> None:
    model = _build(spec).eval()
    clip = _clip(frames=2, height=size[0], width=size[1])
    with torch.no_grad():
        out = model(clip)
    assert out.shape == (2, model.out_channels, 2, *size)
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("levels", [2, 4])
def test_quantised_degrader_emits_only_its_levels_and_passes_gradients(levels: int) -> None:
    from raypriv.method.models.degrader import build_degrader

    torch.manual_seed(0)
    model = build_degrader(out_channels=1, width=4, num_res_blocks=1, levels=levels)
    clip = _clip(frames=2, height=16, width=16)
    out = model(clip)
    distance = (out.detach().unsqueeze(-1) - torch.linspace(0, 1, levels)).abs().min(-1).values
    assert distance.max() < 1e-6
    out.sum().backward()  # straight-through: the rounding does not cut the gradient
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    with pytest.raises(ValueError, match="levels"):
        build_degrader(levels=1)


@pytest.mark.parametrize("spec", ALL_SPECS, ids=_id)
def test_backward_reaches_every_parameter(spec: ModelSpec) -> None:
    model = _build(spec).train()  # batch 2 (x 4 frames for budgets) keeps BatchNorm well defined
    out = model(_clip())
    # Random weights rather than .sum(): a sum's gradient cancels through softmax-like layers.
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(2))).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    non_finite = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not missing, f"parameters without gradient: {missing}"
    assert not non_finite, f"parameters with non-finite gradient: {non_finite}"


@pytest.mark.parametrize("spec", ALL_SPECS, ids=_id)
def test_deterministic_under_seed(spec: ModelSpec) -> None:
    first, second = _build(spec, seed=3).eval(), _build(spec, seed=3).eval()
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs between two builds with the same seed"
    clip = _clip()
    with torch.no_grad():
        assert torch.equal(first(clip), second(clip))


@pytest.mark.parametrize("spec", TINY_SPECS, ids=_id)
def test_different_seeds_give_different_weights(spec: ModelSpec) -> None:
    first, second = _build(spec, seed=0), _build(spec, seed=1)
    assert any(not torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters()))


def test_degrader_treats_frames_independently() -> None:
    # f_d is per frame: changing one frame must leave the others' output untouched.
    model = _build(DEGRADERS.spec("degrader_tiny")).eval()
    clip = _clip(frames=3)
    edited = clip.clone()
    edited[:, :, 1] = 0.0
    with torch.no_grad():
        out, out_edited = model(clip), model(edited)
    torch.testing.assert_close(out[:, :, [0, 2]], out_edited[:, :, [0, 2]])
    assert not torch.allclose(out[:, :, 1], out_edited[:, :, 1])
    torch.testing.assert_close(model(clip[:, :, 0]), out[:, :, 0])  # frames [B, C, H, W] too


def test_frame_averaged_averages_frame_logits() -> None:
    image_model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    model = FrameAveraged(image_model)
    clip = _clip(frames=3, height=4, width=4)
    expected = torch.stack([image_model(clip[:, :, t]) for t in range(3)]).mean(dim=0)
    torch.testing.assert_close(model(clip), expected)
    torch.testing.assert_close(model(clip[:, :, 0]), image_model(clip[:, :, 0]))


def test_budget_zoo_is_diverse() -> None:
    # The attacker evaluation draws architectures from families unseen in training, so the zoo
    # needs many architectures across several families besides the small custom CNNs.
    zoo = [s for s in list_models("budget", include_tiny=False) if s.family not in ("smallcnn", "plaincnn")]
    assert len(zoo) >= 10
    assert len({s.family for s in zoo}) >= 4


def test_every_role_has_a_tiny_entry() -> None:
    assert {s.role for s in TINY_SPECS} == set(REGISTRIES)


def test_families_are_recorded() -> None:
    for spec in ALL_SPECS:
        assert spec.family and spec.role in REGISTRIES
    assert {"resnet", "mobilenet_v2", "mobilenet_v3", "smallcnn", "plaincnn"} <= set(BUDGETS.families())
    assert {"resnet18", "resnet34"} <= set(BUDGETS.names(family="resnet"))
    assert set(TARGETS.families()) == {"c3d", "resnet3d"}


def test_pattern_filtering() -> None:
    names = BUDGETS.names("mobilenet*")
    assert "mobilenet_v2_050" in names and "mobilenet_v3_small_100" in names
    assert all(n.startswith("mobilenet") for n in names)
    assert [s.name for s in list_models("budget", "mobilenet*")] == names
    assert "smallcnn_tiny" not in BUDGETS.names(include_tiny=False)
    assert len(list_models()) == sum(len(r) for r in REGISTRIES.values())


def test_unknown_names_are_rejected_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown budget model 'resnet9000'.*resnet18"):
        create_model("budget", "resnet9000", num_classes=2)
    with pytest.raises(ValueError, match=r"unknown model role 'attacker'.*degrader, target, budget"):
        create_model("attacker", "resnet18", num_classes=2)
    with pytest.raises(ValueError, match="unknown model role"):
        list_models("attacker")


def test_overrides_and_parameter_count() -> None:
    base = create_model("degrader", "degrader_tiny")
    assert create_model("degrader", "degrader_tiny", out_channels=1).out_channels == 1
    wider = create_model("degrader", "degrader_tiny", width=8)
    assert count_parameters(wider) > count_parameters(base) > 0
    base.stem.requires_grad_(False)
    assert count_parameters(base, trainable_only=True) < count_parameters(base)


@pytest.mark.parametrize("spec", [s for s in ALL_SPECS if s.role == "budget"], ids=_id)
def test_batchnorm_statistics_converge_in_a_short_fit(spec: ModelSpec) -> None:
    # torchvision's MobileNetV3 / MNASNet momenta (0.01 / 0.0003) left a fresh model at chance in
    # eval mode after a short fit; every budget model and attacker must track batch statistics.
    model = _build(spec)
    momenta = [m.momentum for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert all(m is None or m >= 0.1 for m in momenta)
