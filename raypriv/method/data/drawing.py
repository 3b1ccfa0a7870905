"""Drawing primitives of the procedural stand-ins: anti-aliased capsules, a stick figure, lighting.

Shared by the synthetic SBU set (`raypriv.method.data.synthetic`) and the synthetic UCF-101 /
VISPR world (`raypriv.method.data.world`). Everything is vectorised over clips and frames:
positions are `[n, t, 2]` tensors in normalised units (1 = the frame's shorter side, x right,
y down), coverage maps `[n, t, h, w]`.
"""

from __future__ import annotations

import math

import torch

# Body proportions in units of body height (the SBU figure is about 0.6 of the frame tall).
HIP, NECK, HEAD_UP, HEAD_R = 0.47, 0.80, 0.09, 0.075
UPPER_ARM, FOREARM, THIGH, SHIN = 0.19, 0.17, 0.25, 0.24
ARM_R, LEG_R, TORSO_R, HAND_R = 0.022, 0.027, 0.085, 0.032


def hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


def lerp(u: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * u


def bump(tau: torch.Tensor, start: float, end: float) -> torch.Tensor:
    """0 outside [start, end], a smooth sin^2 hump of height 1 inside."""
    x = ((tau - start) / (end - start)).clamp(0, 1)
    return torch.sin(math.pi * x) ** 2


def light(img: torch.Tensor, u: torch.Tensor, tt: torch.Tensor, first: int = 22) -> torch.Tensor:
    """Lighting: gain per channel and a slight per-frame flicker, then sensor noise.

    Reads the 8 draws `u[:, first:first + 8]`: 3 gains, flicker depth, rate and phase, noise level
    and the seed of the clip's noise.
    """
    n, t = tt.shape
    gain = torch.stack([lerp(u[:, first + c], 0.8, 1.15) for c in range(3)], 1).view(n, 3, 1, 1, 1)
    flicker = 1 + lerp(u[:, first + 3], 0.0, 0.05).view(n, 1, 1) * torch.sin(
        2 * math.pi * lerp(u[:, first + 4], 1, 4).view(n, 1) * tt + u[:, first + 5].view(n, 1) * 6.28
    ).view(n, 1, t)
    img = img * gain * flicker.view(n, 1, t, 1, 1)
    sigma = lerp(u[:, first + 6], 0.01, 0.05).view(n, 1, 1, 1, 1)
    # Each clip's noise comes from its own generator, so a clip never depends on its chunk-mates.
    noise = torch.stack(
        [torch.randn(img.shape[1:], generator=torch.Generator().manual_seed(int(ui[first + 7] * 2**31))) for ui in u]
    ) if n else torch.zeros_like(img)
    return img + sigma * noise


def skeleton(*, x, ground, height, build, face_dir, near_sh, near_el, far_sh, far_el, gait, kick, kick_knee, lean):
    """Joint positions [n, t, 2] (x right, y down) of one actor from its angles."""
    hy = ground - HIP * height
    ny = ground - NECK * height
    hip = torch.stack([x, hy.expand_as(x)], -1)
    neck = torch.stack([x + face_dir * lean * height, ny.expand_as(x)], -1)
    head = neck + torch.stack([torch.zeros_like(x), -HEAD_UP * height.expand_as(x)], -1)
    shoulder = neck + torch.stack([torch.zeros_like(x), 0.03 * height.expand_as(x)], -1)
    # Hair on the back and top of the head: the only thing that shows which way an actor faces.
    r = HEAD_R * height.expand_as(x)
    hair = head + torch.stack([-face_dir * 0.45 * r, -0.35 * r], -1)

    def limb(root, angle, flex, l1, l2, flex_sign):
        # angle 0 = hanging straight down, positive swings towards face_dir.
        d1 = torch.stack([face_dir * torch.sin(angle), torch.cos(angle)], -1)
        a2 = angle + flex_sign * flex
        d2 = torch.stack([face_dir * torch.sin(a2), torch.cos(a2)], -1)
        mid = root + d1 * (l1 * height).unsqueeze(-1)
        return mid, mid + d2 * (l2 * height).unsqueeze(-1)

    near_elbow, near_hand = limb(shoulder, near_sh, near_el, UPPER_ARM, FOREARM, 1.0)
    far_elbow, far_hand = limb(shoulder, far_sh, far_el, UPPER_ARM, FOREARM, 1.0)
    front_knee, front_foot = limb(hip, 0.15 + gait + kick, 0.2 * gait.abs() - kick_knee.clamp(max=0), THIGH, SHIN, -1.0)
    back_knee, back_foot = limb(hip, -0.15 - gait, 0.2 * gait.abs() + 0.1, THIGH, SHIN, -1.0)
    return {
        "height": height, "build": build, "hip": hip, "neck": neck, "head": head, "hair": hair,
        "shoulder": shoulder, "near_elbow": near_elbow, "near_hand": near_hand,
        "far_elbow": far_elbow, "far_hand": far_hand, "front_knee": front_knee,
        "front_foot": front_foot, "back_knee": back_knee, "back_foot": back_foot,
    }


def body_parts(j):
    """Drawing order (back to front): far arm, legs, torso, head, near arm, hands.

    Each part is (name, (p0, p1, radius, colour key)), the key one of shirt, trousers, skin, hair.
    """
    hgt, build = j["height"], j["build"]
    arm_r, leg_r = ARM_R * hgt, LEG_R * hgt * build
    return [
        ("far_upper_arm", (j["shoulder"], j["far_elbow"], arm_r, "shirt")),
        ("far_forearm", (j["far_elbow"], j["far_hand"], arm_r, "shirt")),
        ("far_hand", (j["far_hand"], j["far_hand"], HAND_R * hgt, "skin")),
        ("back_thigh", (j["hip"], j["back_knee"], leg_r, "trousers")),
        ("back_shin", (j["back_knee"], j["back_foot"], leg_r, "trousers")),
        ("front_thigh", (j["hip"], j["front_knee"], leg_r, "trousers")),
        ("front_shin", (j["front_knee"], j["front_foot"], leg_r, "trousers")),
        ("torso", (j["neck"], j["hip"], TORSO_R * hgt * build, "shirt")),
        ("head", (j["head"], j["head"], HEAD_R * hgt, "skin")),
        ("hair", (j["hair"], j["hair"], 0.75 * HEAD_R * hgt, "hair")),
        ("near_upper_arm", (j["shoulder"], j["near_elbow"], arm_r, "shirt")),
        ("near_forearm", (j["near_elbow"], j["near_hand"], arm_r, "shirt")),
        ("near_hand", (j["near_hand"], j["near_hand"], HAND_R * hgt, "skin")),
    ]


def capsule(px, py, p0, p1, radius, scale: float) -> torch.Tensor:
    """Anti-aliased coverage [n, t, h, w] of the capsule p0-p1 ([n, t, 2]) of `radius` ([n, 1])."""
    ax, ay = p0[..., 0, None, None], p0[..., 1, None, None]
    dx, dy = (p1 - p0)[..., 0, None, None], (p1 - p0)[..., 1, None, None]
    qx, qy = px - ax, py - ay
    length2 = (dx * dx + dy * dy).clamp_min(1e-12)
    s = ((qx * dx + qy * dy) / length2).clamp(0, 1)
    dist = torch.sqrt((qx - s * dx) ** 2 + (qy - s * dy) ** 2)
    r = radius.view(*radius.shape, 1, 1) if radius.dim() == 2 else radius
    # Coverage ramps over one pixel around the edge, so a sub-pixel limb is drawn faint, not lost.
    return ((r - dist) * scale + 0.5).clamp(0, 1)
