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

from raypriv.method.data.drawing import body_parts, bump, capsule, hsv, lerp, light, skeleton
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
    shirt = [hsv(h, rng.uniform(0.55, 0.9), rng.uniform(0.55, 0.9)) for h in hues]
    trousers = [hsv(rng.uniform(), rng.uniform(0.2, 0.7), rng.uniform(0.15, 0.45)) for _ in range(NUM_ACTORS)]
    skin = [_SKIN_TONES[i] for i in rng.integers(0, len(_SKIN_TONES), NUM_ACTORS)]
    pattern = rng.permutation(np.arange(NUM_ACTORS) % 5)
    return Appearance(
        shirt=torch.tensor(shirt, dtype=torch.float32),
        trousers=torch.tensor(trousers, dtype=torch.float32),
        skin=torch.tensor(skin, dtype=torch.float32),
        hair=torch.tensor([hsv(rng.uniform(0.0, 0.15), rng.uniform(0.3, 0.8), rng.uniform(0.05, 0.35))
                           for _ in range(NUM_ACTORS)], dtype=torch.float32),
        pattern=torch.as_tensor(pattern, dtype=torch.int64),
        pattern_contrast=torch.as_tensor(rng.uniform(0.25, 0.45, NUM_ACTORS), dtype=torch.float32),
        height=torch.as_tensor(rng.uniform(0.88, 1.1, NUM_ACTORS), dtype=torch.float32),
        build=torch.as_tensor(rng.uniform(0.8, 1.3, NUM_ACTORS), dtype=torch.float32),
    )


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
_OBJECT_R = 0.04  # the exchanged object's radius, in units of body height


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


def _render(u, actions, identities, preset: Preset, app: Appearance):
    """RGB clips [n, 3, t, h, w] in [0, 1] and face / body coverage [n, t, h, w] from the draws `u`."""
    n, t, h, w = len(u), preset.frames, preset.height, preset.width
    scale = float(min(h, w))  # pixels per normalised unit
    tt = torch.linspace(0, 1, t).expand(n, t)
    clip = _nuisances(u, tt)
    motion = _motion_curves(actions, clip)
    actors = _pose_actors(clip, motion, identities, app, tt)
    img, face, body = _draw_scene(u, clip, actors, motion, app, t, h, w, scale)
    return light(img, u, tt).clamp(0, 1), face, body


def _nuisances(u: torch.Tensor, tt: torch.Tensor) -> dict:
    """Per-clip nuisances (each column of u is one independent draw), and the action time tau."""
    speed = lerp(u[:, 0:1], 0.75, 1.0)
    start = lerp(u[:, 1:2], 0.0, 1.0) * (1 - speed)
    cam_y = lerp(u[:, 5], -0.04, 0.04)
    return dict(
        tau=start + speed * tt,  # action time in [0, 1]
        left_first=u[:, 2] < 0.5,  # which actor of the pair stands on the left
        active_left=u[:, 3] < 0.5,  # which one performs the action
        cam_x=lerp(u[:, 4], -0.05, 0.05),
        zoom=lerp(u[:, 6], 0.9, 1.08),
        gap=lerp(u[:, 7], 0.26, 0.36),  # distance between the two actors
        ground=0.86 + cam_y,
        # Idle sway: small arm and body motion of both actors, independent of the action.
        sway_amp=lerp(u[:, 8:10], 0.05, 0.3),  # [n, 2] per actor (left, right)
        sway_freq=lerp(u[:, 10:12], 0.5, 2.0),
        sway_phase=u[:, 12:14] * 2 * math.pi,
        # Distractor: the passive actor half-raises an arm at a random time in half the clips.
        distract_on=(u[:, 14] < 0.5).float(),
        distract_t0=lerp(u[:, 15], 0.0, 0.5),
        distract_angle=lerp(u[:, 16], 0.5, 1.2),
        drift=lerp(u[:, 17], -0.04, 0.04),  # both actors drift together (camera pan)
        # Each actor also shifts on its own by up to as much as an action's step, so how far the
        # two bodies move (a coarse cue that survives downsampling) is not enough to tell the action;
        # gait, facing and limbs (fine cues) are.
        own_drift=lerp(u[:, 30:32], -0.045, 0.045),  # [n, 2] per actor (left, right)
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
    hug = is_("hugging") * bump(tau, 0.1, 1.3).where(tau < 0.7, torch.ones_like(tau))
    step_a = step_a + 0.03 * hug
    step_b = 0.03 * hug - 0.015 * (is_("pushing") * bump(tau, 0.35, 1.2) + is_("punching") * bump(tau, 0.4, 1.0))

    # Arm angles: shoulder angle from hanging down (0) towards the other actor (pi/2 = horizontal),
    # elbow flex. Near arm (towards the other actor) and far arm.
    push = is_("pushing") * bump(tau, 0.15, 0.85)
    punch = is_("punching") * (bump(tau, 0.2, 0.45) + bump(tau, 0.55, 0.8))
    shake = is_("shaking_hands") * bump(tau, 0.1, 1.1).where(tau < 0.6, torch.ones_like(tau))
    shake_wobble = shake * 0.25 * torch.sin(2 * math.pi * 3 * tau)
    give = is_("exchanging") * bump(tau, 0.05, 0.95)
    kick = is_("kicking") * bump(tau, 0.25, 0.75)
    # Distractor gesture of the passive actor (never part of any action's definition).
    t0 = clip["distract_t0"].view(n, 1)
    dis = clip["distract_on"].view(n, 1) * bump((tau - t0) / 0.5, 0.0, 1.0)
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
        kick_knee_a=0.6 * kick * (1 - bump(tau, 0.4, 0.6)),
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
        actors.append((skeleton(
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
    wall = torch.stack([lerp(u[:, 18 + c], 0.35, 0.8) for c in range(3)], 1)  # [n, 3]
    wall = 0.6 * wall + 0.4 * wall.mean(1, keepdim=True)  # muted colours
    slope = lerp(u[:, 21], -0.25, 0.25).view(n, 1, 1, 1, 1)
    img = wall.view(n, 3, 1, 1, 1) * (1 + slope * (py - 0.5))
    img = img.expand(n, 3, t, h, w).clone()
    floor = (py > clip["ground"].view(n, 1, 1, 1, 1)).float()
    img = img * (1 - 0.25 * floor)

    face = torch.zeros(n, t, h, w)
    body = torch.zeros(n, t, h, w)
    for joints, actor_id in actors:
        colours = {"shirt": app.shirt[actor_id], "trousers": app.trousers[actor_id], "skin": app.skin[actor_id],
                   "hair": app.hair[actor_id]}
        for part, (p0, p1, radius, colour) in body_parts(joints):
            cov = capsule(px, py, p0, p1, radius, scale)  # [n, t, h, w]
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
    cov = capsule(px, py, obj, obj, obj_r, scale) * m["exchanging"].view(n, 1, 1, 1)
    img = img + cov.unsqueeze(1) * (torch.tensor(_OBJECT_COLOUR).view(1, 3, 1, 1, 1) - img)
    return img, face, body


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
