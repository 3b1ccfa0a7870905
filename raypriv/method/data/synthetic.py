"""The embedded data set: a procedurally generated stand-in for SBU Kinect Interaction.

Two stick-figure actors interact in front of a plain wall. The label structure is SBU's: 8
interaction actions (`SBU_ACTIONS`) x 13 actor-pair identities (`SBU_PAIRS`, the same 13 pairs of
7 participants as the real set).

* Identity is carried by **static appearance**: each of the 7 actors has its own shirt colour and
  texture pattern, trouser colour, skin tone, height and build, drawn once from
  `appearance_seed` (fixed by default, so every `seed` shows the same 13 identities).
* The action is carried by **motion**: small gestures of thin limbs (arms about 1.3 px wide at
  48x48) and small steps, so that spatial downsampling erases the action long before it erases
  the clothing colours that give identity away (the paper's Table 1 property).
* **Nuisances**, drawn per clip from `seed`, split and index: wall colour and gradient, lighting
  gain per channel and flicker, pixel noise, camera position and scale jitter, actor spacing,
  which actor stands left and which one acts, speed and start phase of the action, idle arm and
  body sway, and distractor arm gestures of the passive actor.

Every clip is a pure function of (appearance_seed, seed, split, index): splits draw from
disjoint random streams, and labels are assigned round-robin over the 104 (action, identity)
cells so every split is exactly balanced. A split is rendered on first access (vectorised torch,
in chunks) and kept in memory as uint8; nothing is written to disk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from raypriv.method.data.presets import Preset, get_preset
from raypriv.method.data.types import SBU_ACTIONS, SBU_PAIRS, SPLITS, Sample

DEFAULT_APPEARANCE_SEED = 2018
NUM_ACTORS = 7
NUM_ACTIONS = len(SBU_ACTIONS)
NUM_IDENTITIES = len(SBU_PAIRS)
_SPLIT_IDS = {name: i for i, name in enumerate(SPLITS)}
_NUM_DRAWS = 48  # uniform numbers drawn per clip; each nuisance below reads fixed slots
_SKIN_TONES = ((0.96, 0.80, 0.69), (0.87, 0.67, 0.52), (0.76, 0.53, 0.38), (0.55, 0.37, 0.25), (0.36, 0.23, 0.15))
_OBJECT_COLOUR = (0.95, 0.95, 0.2)


@dataclass(frozen=True)
class Appearance:
    """The 7 actors' static looks (tensors indexed by actor 0..6)."""

    shirt: torch.Tensor  # [7, 3]
    trousers: torch.Tensor  # [7, 3]
    skin: torch.Tensor  # [7, 3]
    hair: torch.Tensor  # [7, 3]
    pattern: torch.Tensor  # [7] int: 0 plain, 1 horizontal, 2 vertical stripes, 3 checks, 4 diagonal
    pattern_contrast: torch.Tensor  # [7]
    height: torch.Tensor  # [7] relative body height
    build: torch.Tensor  # [7] relative body width


def make_appearance(appearance_seed: int = DEFAULT_APPEARANCE_SEED) -> Appearance:
    rng = np.random.default_rng(np.random.SeedSequence([appearance_seed, 0xA11]))
    # Hues spread evenly round the colour wheel (then shuffled) so no two shirts are near-twins.
    hues = (np.arange(NUM_ACTORS) / NUM_ACTORS + rng.uniform()) % 1.0
    rng.shuffle(hues)
    shirt = [_hsv(h, rng.uniform(0.55, 0.9), rng.uniform(0.55, 0.9)) for h in hues]
    trousers = [_hsv(rng.uniform(), rng.uniform(0.2, 0.7), rng.uniform(0.15, 0.45)) for _ in range(NUM_ACTORS)]
    skin = [_SKIN_TONES[i] for i in rng.integers(0, len(_SKIN_TONES), NUM_ACTORS)]
    pattern = rng.permutation(np.arange(NUM_ACTORS) % 5)
    return Appearance(
        shirt=torch.tensor(shirt, dtype=torch.float32),
        trousers=torch.tensor(trousers, dtype=torch.float32),
        skin=torch.tensor(skin, dtype=torch.float32),
        hair=torch.tensor([_hsv(rng.uniform(0.0, 0.15), rng.uniform(0.3, 0.8), rng.uniform(0.05, 0.35))
                           for _ in range(NUM_ACTORS)], dtype=torch.float32),
        pattern=torch.as_tensor(pattern, dtype=torch.int64),
        pattern_contrast=torch.as_tensor(rng.uniform(0.25, 0.45, NUM_ACTORS), dtype=torch.float32),
        height=torch.as_tensor(rng.uniform(0.88, 1.1, NUM_ACTORS), dtype=torch.float32),
        build=torch.as_tensor(rng.uniform(0.8, 1.3, NUM_ACTORS), dtype=torch.float32),
    )


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


def labels_for(index: int) -> tuple[int, int]:
    """(action, identity) of clip `index`: round-robin over the 104 cells, so splits are balanced."""
    cell = index % (NUM_ACTIONS * NUM_IDENTITIES)
    return cell % NUM_ACTIONS, cell // NUM_ACTIONS


def nuisance_draws(seed: int, split: str, index: int) -> np.ndarray:
    """The clip's uniform random numbers; (seed, split, index) seeds its own stream."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_IDS[split], index]))
    return rng.random(_NUM_DRAWS)


class SyntheticSBU(Dataset):
    """SBU-like synthetic clips for one split; samples are `Sample`s with face and body masks."""

    num_actions = NUM_ACTIONS
    num_identities = NUM_IDENTITIES
    action_names = SBU_ACTIONS
    identity_names = tuple(f"s{a:02d}s{b:02d}" for a, b in SBU_PAIRS)

    def __init__(
        self,
        split: str,
        *,
        preset: str | Preset = "laptop",
        seed: int = 0,
        appearance_seed: int = DEFAULT_APPEARANCE_SEED,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        self.split = split
        self.preset = get_preset(preset)
        self.seed = seed
        self.appearance_seed = appearance_seed
        n = self.preset.clips_per_cell[split] * NUM_ACTIONS * NUM_IDENTITIES
        labels = [labels_for(i) for i in range(n)]
        self.actions = torch.tensor([a for a, _ in labels], dtype=torch.int64)
        self.identities = torch.tensor([b for _, b in labels], dtype=torch.int64)
        self._clips: torch.Tensor | None = None  # uint8 [N, 3, T, H, W], rendered on first use
        self._masks: torch.Tensor | None = None  # uint8 [N, 2, T, H, W]: face, body

    def __len__(self) -> int:
        return len(self.actions)

    def __getitem__(self, index: int) -> Sample:
        clips, masks = self.tensors()
        return Sample(
            clip=clips[index].float().div_(255),
            action=int(self.actions[index]),
            identity=int(self.identities[index]),
            face_mask=masks[index, 0].float().div_(255),
            body_mask=masks[index, 1].float().div_(255),
        )

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split as uint8 tensors: clips `[N, 3, T, H, W]` and masks `[N, 2, T, H, W]`."""
        if self._clips is None:
            self._clips, self._masks = render_clips(
                [nuisance_draws(self.seed, self.split, i) for i in range(len(self))],
                self.actions,
                self.identities,
                self.preset,
                make_appearance(self.appearance_seed),
            )
        return self._clips, self._masks


# --- rendering ---------------------------------------------------------------------------------
# Body proportions in units of body height (the figure is about 0.6 of the frame tall).
_HIP, _NECK, _HEAD_UP, _HEAD_R = 0.47, 0.80, 0.09, 0.075
_UPPER_ARM, _FOREARM, _THIGH, _SHIN = 0.19, 0.17, 0.25, 0.24
_ARM_R, _LEG_R, _TORSO_R, _HAND_R, _OBJECT_R = 0.022, 0.027, 0.085, 0.032, 0.04


def render_clips(
    draws: list[np.ndarray],
    actions: torch.Tensor,
    identities: torch.Tensor,
    preset: Preset,
    appearance: Appearance,
    chunk_pixels: int = 24_000_000,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render clips from their nuisance draws; returns uint8 clips and face/body masks."""
    n, t, h, w = len(draws), preset.frames, preset.height, preset.width
    clips = torch.empty((n, 3, t, h, w), dtype=torch.uint8)
    masks = torch.empty((n, 2, t, h, w), dtype=torch.uint8)
    u_all = torch.as_tensor(np.stack(draws), dtype=torch.float32) if n else torch.zeros(0, _NUM_DRAWS)
    # Memory grows with clips x frames x segments x pixels; chunk to stay around a few hundred MB.
    step = max(1, chunk_pixels // (t * h * w * 24))
    with torch.no_grad():
        for lo in range(0, n, step):
            sl = slice(lo, min(n, lo + step))
            rgb, face, body = _render(u_all[sl], actions[sl], identities[sl], preset, appearance)
            clips[sl] = (rgb * 255).round_().clamp_(0, 255).to(torch.uint8)
            masks[sl, 0] = (face * 255).round_().to(torch.uint8)
            masks[sl, 1] = (body * 255).round_().to(torch.uint8)
    return clips, masks


def _lerp(u: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * u


def _bump(tau: torch.Tensor, start: float, end: float) -> torch.Tensor:
    """0 outside [start, end], a smooth sin^2 hump of height 1 inside."""
    x = ((tau - start) / (end - start)).clamp(0, 1)
    return torch.sin(math.pi * x) ** 2


def _render(u, actions, identities, preset: Preset, app: Appearance):
    """RGB clips [n, 3, t, h, w] in [0, 1] and face / body coverage [n, t, h, w] from the draws `u`."""
    n, t, h, w = len(u), preset.frames, preset.height, preset.width
    scale = float(min(h, w))  # pixels per normalised unit
    tt = torch.linspace(0, 1, t).expand(n, t)
    clip = _nuisances(u, tt)
    motion = _motion_curves(actions, clip)
    actors = _pose_actors(clip, motion, identities, app, tt)
    img, face, body = _draw_scene(u, clip, actors, motion, app, t, h, w, scale)
    return _light(img, u, tt).clamp(0, 1), face, body


def _nuisances(u: torch.Tensor, tt: torch.Tensor) -> dict:
    """Per-clip nuisances (each column of u is one independent draw), and the action time tau."""
    speed = _lerp(u[:, 0:1], 0.75, 1.0)
    start = _lerp(u[:, 1:2], 0.0, 1.0) * (1 - speed)
    cam_y = _lerp(u[:, 5], -0.04, 0.04)
    return dict(
        tau=start + speed * tt,  # action time in [0, 1]
        left_first=u[:, 2] < 0.5,  # which actor of the pair stands on the left
        active_left=u[:, 3] < 0.5,  # which one performs the action
        cam_x=_lerp(u[:, 4], -0.05, 0.05),
        zoom=_lerp(u[:, 6], 0.9, 1.08),
        gap=_lerp(u[:, 7], 0.26, 0.36),  # distance between the two actors
        ground=0.86 + cam_y,
        # Idle sway: small arm and body motion of both actors, independent of the action.
        sway_amp=_lerp(u[:, 8:10], 0.05, 0.3),  # [n, 2] per actor (left, right)
        sway_freq=_lerp(u[:, 10:12], 0.5, 2.0),
        sway_phase=u[:, 12:14] * 2 * math.pi,
        # Distractor: the passive actor half-raises an arm at a random time in half the clips.
        distract_on=(u[:, 14] < 0.5).float(),
        distract_t0=_lerp(u[:, 15], 0.0, 0.5),
        distract_angle=_lerp(u[:, 16], 0.5, 1.2),
        drift=_lerp(u[:, 17], -0.04, 0.04),  # both actors drift together (camera pan)
        # Each actor also shifts on its own by up to as much as an action's step, so how far the
        # two bodies move (a coarse cue that survives downsampling) is not enough to tell the action;
        # gait, facing and limbs (fine cues) are.
        own_drift=_lerp(u[:, 30:32], -0.045, 0.045),  # [n, 2] per actor (left, right)
    )


def _motion_curves(actions: torch.Tensor, clip: dict) -> dict:
    """Action motion curves [n, t] for the active (A) and the passive (B) actor."""
    tau = clip["tau"]
    n = len(tau)
    a = actions.view(n, 1)
    is_ = lambda name: (a == SBU_ACTIONS.index(name)).float()  # noqa: E731
    walk = (is_("approaching") + is_("departing"))
    step_a = 0.05 * (is_("approaching") - is_("departing")) * tau.clamp(0, 1)  # towards B is +
    gait = walk * torch.sin(2 * math.pi * 2 * tau) * 0.45
    hug = is_("hugging") * _bump(tau, 0.1, 1.3).where(tau < 0.7, torch.ones_like(tau))
    step_a = step_a + 0.03 * hug
    step_b = 0.03 * hug - 0.015 * (is_("pushing") * _bump(tau, 0.35, 1.2) + is_("punching") * _bump(tau, 0.4, 1.0))

    # Arm angles: shoulder angle from hanging down (0) towards the other actor (pi/2 = horizontal),
    # elbow flex. Near arm (towards the other actor) and far arm.
    push = is_("pushing") * _bump(tau, 0.15, 0.85)
    punch = is_("punching") * (_bump(tau, 0.2, 0.45) + _bump(tau, 0.55, 0.8))
    shake = is_("shaking_hands") * _bump(tau, 0.1, 1.1).where(tau < 0.6, torch.ones_like(tau))
    shake_wobble = shake * 0.25 * torch.sin(2 * math.pi * 3 * tau)
    give = is_("exchanging") * _bump(tau, 0.05, 0.95)
    kick = is_("kicking") * _bump(tau, 0.25, 0.75)
    # Distractor gesture of the passive actor (never part of any action's definition).
    t0 = clip["distract_t0"].view(n, 1)
    dis = clip["distract_on"].view(n, 1) * _bump((tau - t0) / 0.5, 0.0, 1.0)
    return dict(
        step_a=step_a, step_b=step_b, gait=gait, exchanging=is_("exchanging"),
        facing_away_a=is_("departing").view(n) > 0,
        near_sh_a=1.45 * push + 1.75 * punch + 1.0 * shake + 0.95 * give + 1.5 * hug,
        near_el_a=0.1 * push + 0.05 * punch + 0.35 * shake + shake_wobble + 0.4 * give + 1.1 * hug,
        far_sh_a=1.45 * push + 1.5 * hug - 0.3 * punch,
        far_el_a=0.1 * push + 1.1 * hug + 1.2 * punch,
        near_sh_b=1.0 * shake + 0.95 * give * (tau > 0.3).float() + 1.5 * hug,
        near_el_b=0.35 * shake - shake_wobble + 0.4 * give + 1.1 * hug,
        far_sh_b=1.5 * hug + dis * clip["distract_angle"].view(n, 1),
        far_el_b=1.1 * hug + dis * 0.8,
        kick_leg_a=0.9 * kick,
        kick_knee_a=0.6 * kick * (1 - _bump(tau, 0.4, 0.6)),
    )


def _pose_actors(clip: dict, m: dict, identities: torch.Tensor, app: Appearance, tt: torch.Tensor) -> list:
    """[(joints, actor ids)] of the left and the right actor of every clip."""
    n = len(tt)
    pair = torch.as_tensor(SBU_PAIRS, dtype=torch.int64)[identities] - 1  # [n, 2] actor ids
    ids = (torch.where(clip["left_first"], pair[:, 0], pair[:, 1]), torch.where(clip["left_first"], pair[:, 1], pair[:, 0]))
    zeros = torch.zeros(n, *tt.shape[1:])
    actors = []
    for side in (0, 1):  # 0 = left actor (faces right, +1), 1 = right actor (faces left, -1)
        facing = 1.0 - 2.0 * side
        active = clip["active_left"] if side == 0 else ~clip["active_left"]
        act = active.float().view(n, 1)
        pick = lambda av, bv: act * av + (1 - act) * bv  # noqa: E731
        actor_id = ids[side]
        own = slice(side, side + 1)
        sway = clip["sway_amp"][:, own] * torch.sin(2 * math.pi * clip["sway_freq"][:, own] * tt + clip["sway_phase"][:, own])
        x0 = (0.5 + (clip["drift"].view(n, 1) + clip["own_drift"][:, own]) * tt + clip["cam_x"].view(n, 1)
              - facing * clip["gap"].view(n, 1) / 2)
        x = x0 + facing * pick(m["step_a"], m["step_b"])
        # A departing actor turns away: its "towards the other" direction flips.
        face_dir = torch.full((n, 1), facing)
        face_dir = torch.where((active & m["facing_away_a"]).view(n, 1), -face_dir, face_dir)
        actors.append((_skeleton(
            x=x, ground=clip["ground"].view(n, 1),
            height=0.6 * clip["zoom"].view(n, 1) * app.height[actor_id].view(n, 1),
            build=app.build[actor_id].view(n, 1), face_dir=face_dir,
            near_sh=pick(m["near_sh_a"], m["near_sh_b"]) + sway,
            near_el=pick(m["near_el_a"], m["near_el_b"]) + 0.3 * sway.abs(),
            far_sh=pick(m["far_sh_a"], m["far_sh_b"]) - sway,
            far_el=pick(m["far_el_a"], m["far_el_b"]) + 0.3 * sway.abs(),
            gait=pick(m["gait"], zeros), kick=pick(m["kick_leg_a"], zeros), kick_knee=pick(m["kick_knee_a"], zeros),
            lean=0.02 * sway,
        ), actor_id))
    return actors


def _draw_scene(u, clip: dict, actors: list, m: dict, app: Appearance, t: int, h: int, w: int, scale: float):
    """The wall, floor, both actors and the exchanged object: (img [n, 3, t, h, w], face, body)."""
    n = len(u)
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) / scale
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) / scale
    py, px = torch.meshgrid(ys, xs, indexing="ij")  # [h, w]
    wall = torch.stack([_lerp(u[:, 18 + c], 0.35, 0.8) for c in range(3)], 1)  # [n, 3]
    wall = 0.6 * wall + 0.4 * wall.mean(1, keepdim=True)  # muted colours
    slope = _lerp(u[:, 21], -0.25, 0.25).view(n, 1, 1, 1, 1)
    img = wall.view(n, 3, 1, 1, 1) * (1 + slope * (py - 0.5))
    img = img.expand(n, 3, t, h, w).clone()
    floor = (py > clip["ground"].view(n, 1, 1, 1, 1)).float()
    img = img * (1 - 0.25 * floor)

    face = torch.zeros(n, t, h, w)
    body = torch.zeros(n, t, h, w)
    for joints, actor_id in actors:
        colours = {"shirt": app.shirt[actor_id], "trousers": app.trousers[actor_id], "skin": app.skin[actor_id],
                   "hair": app.hair[actor_id]}
        for part, (p0, p1, radius, colour) in _parts(joints):
            cov = _capsule(px, py, p0, p1, radius, scale)  # [n, t, h, w]
            col = colours[colour].view(n, 3, 1, 1, 1)
            if part == "torso":
                col = col * (1 + _pattern(px, py, joints, app, actor_id, scale).unsqueeze(1))
            img = img + cov.unsqueeze(1) * (col - img)
            body = torch.maximum(body, cov)
            if part in ("head", "hair"):
                face = torch.maximum(face, cov)
    # Exchanged object: in A's near hand until the hand-over, then in B's.
    a_hand, b_hand = actors[0][0]["near_hand"], actors[1][0]["near_hand"]
    left_active = clip["active_left"].view(n, 1, 1)
    hand_a = torch.where(left_active, a_hand, b_hand)
    hand_b = torch.where(left_active, b_hand, a_hand)
    obj = torch.where((clip["tau"] < 0.5).unsqueeze(-1), hand_a, hand_b)
    obj_r = _OBJECT_R * 0.6 * clip["zoom"].view(n, 1)
    cov = _capsule(px, py, obj, obj, obj_r, scale) * m["exchanging"].view(n, 1, 1, 1)
    img = img + cov.unsqueeze(1) * (torch.tensor(_OBJECT_COLOUR).view(1, 3, 1, 1, 1) - img)
    return img, face, body


def _light(img: torch.Tensor, u: torch.Tensor, tt: torch.Tensor) -> torch.Tensor:
    """Lighting: gain per channel and a slight per-frame flicker, then sensor noise."""
    n, t = tt.shape
    gain = torch.stack([_lerp(u[:, 22 + c], 0.8, 1.15) for c in range(3)], 1).view(n, 3, 1, 1, 1)
    flicker = 1 + _lerp(u[:, 25], 0.0, 0.05).view(n, 1, 1) * torch.sin(
        2 * math.pi * _lerp(u[:, 26], 1, 4).view(n, 1) * tt + u[:, 27].view(n, 1) * 6.28
    ).view(n, 1, t)
    img = img * gain * flicker.view(n, 1, t, 1, 1)
    sigma = _lerp(u[:, 28], 0.01, 0.05).view(n, 1, 1, 1, 1)
    # Each clip's noise comes from its own generator, so a clip never depends on its chunk-mates.
    noise = torch.stack(
        [torch.randn(img.shape[1:], generator=torch.Generator().manual_seed(int(ui[29] * 2**31))) for ui in u]
    ) if n else torch.zeros_like(img)
    return img + sigma * noise


def _skeleton(*, x, ground, height, build, face_dir, near_sh, near_el, far_sh, far_el, gait, kick, kick_knee, lean):
    """Joint positions [n, t, 2] (x right, y down) of one actor from its angles."""
    hy = ground - _HIP * height
    ny = ground - _NECK * height
    hip = torch.stack([x, hy.expand_as(x)], -1)
    neck = torch.stack([x + face_dir * lean * height, ny.expand_as(x)], -1)
    head = neck + torch.stack([torch.zeros_like(x), -_HEAD_UP * height.expand_as(x)], -1)
    shoulder = neck + torch.stack([torch.zeros_like(x), 0.03 * height.expand_as(x)], -1)
    # Hair on the back and top of the head: the only thing that shows which way an actor faces.
    r = _HEAD_R * height.expand_as(x)
    hair = head + torch.stack([-face_dir * 0.45 * r, -0.35 * r], -1)

    def limb(root, angle, flex, l1, l2, flex_sign):
        # angle 0 = hanging straight down, positive swings towards face_dir.
        d1 = torch.stack([face_dir * torch.sin(angle), torch.cos(angle)], -1)
        a2 = angle + flex_sign * flex
        d2 = torch.stack([face_dir * torch.sin(a2), torch.cos(a2)], -1)
        mid = root + d1 * (l1 * height).unsqueeze(-1)
        return mid, mid + d2 * (l2 * height).unsqueeze(-1)

    near_elbow, near_hand = limb(shoulder, near_sh, near_el, _UPPER_ARM, _FOREARM, 1.0)
    far_elbow, far_hand = limb(shoulder, far_sh, far_el, _UPPER_ARM, _FOREARM, 1.0)
    front_knee, front_foot = limb(hip, 0.15 + gait + kick, 0.2 * gait.abs() - kick_knee.clamp(max=0), _THIGH, _SHIN, -1.0)
    back_knee, back_foot = limb(hip, -0.15 - gait, 0.2 * gait.abs() + 0.1, _THIGH, _SHIN, -1.0)
    return {
        "height": height, "build": build, "hip": hip, "neck": neck, "head": head, "hair": hair,
        "shoulder": shoulder, "near_elbow": near_elbow, "near_hand": near_hand,
        "far_elbow": far_elbow, "far_hand": far_hand, "front_knee": front_knee,
        "front_foot": front_foot, "back_knee": back_knee, "back_foot": back_foot,
    }


def _parts(j):
    """Drawing order (back to front): far arm, legs, torso, head, near arm, hands."""
    hgt, build = j["height"], j["build"]
    arm_r, leg_r = _ARM_R * hgt, _LEG_R * hgt * build
    return [
        ("far_upper_arm", (j["shoulder"], j["far_elbow"], arm_r, "shirt")),
        ("far_forearm", (j["far_elbow"], j["far_hand"], arm_r, "shirt")),
        ("far_hand", (j["far_hand"], j["far_hand"], _HAND_R * hgt, "skin")),
        ("back_thigh", (j["hip"], j["back_knee"], leg_r, "trousers")),
        ("back_shin", (j["back_knee"], j["back_foot"], leg_r, "trousers")),
        ("front_thigh", (j["hip"], j["front_knee"], leg_r, "trousers")),
        ("front_shin", (j["front_knee"], j["front_foot"], leg_r, "trousers")),
        ("torso", (j["neck"], j["hip"], _TORSO_R * hgt * build, "shirt")),
        ("head", (j["head"], j["head"], _HEAD_R * hgt, "skin")),
        ("hair", (j["hair"], j["hair"], 0.75 * _HEAD_R * hgt, "hair")),
        ("near_upper_arm", (j["shoulder"], j["near_elbow"], arm_r, "shirt")),
        ("near_forearm", (j["near_elbow"], j["near_hand"], arm_r, "shirt")),
        ("near_hand", (j["near_hand"], j["near_hand"], _HAND_R * hgt, "skin")),
    ]


def _capsule(px, py, p0, p1, radius, scale: float) -> torch.Tensor:
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


def _pattern(px, py, joints, app: Appearance, actor_id, scale: float) -> torch.Tensor:
    """Shirt texture in [-c, c] ([n, t, h, w]) in the torso's own frame, so it moves with the body."""
    n = len(actor_id)
    period = (0.1 * joints["height"]).view(n, 1, 1, 1).clamp_min(2.2 / scale)
    lx = (px - joints["hip"][..., 0, None, None]) / period
    ly = (py - joints["hip"][..., 1, None, None]) / period
    waves = torch.stack(
        [
            torch.zeros_like(lx),
            torch.sin(2 * math.pi * ly),
            torch.sin(2 * math.pi * lx),
            torch.sign(torch.sin(2 * math.pi * lx) * torch.sin(2 * math.pi * ly)),
            torch.sin(2 * math.pi * (lx + ly) / 1.4),
        ]
    )  # [5, n, t, h, w]
    kind = app.pattern[actor_id]
    chosen = waves[kind, torch.arange(n)]
    return app.pattern_contrast[actor_id].view(n, 1, 1, 1) * chosen
