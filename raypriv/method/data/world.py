"""The embedded stand-ins of the paper's second setting: UCF-101-like action videos and VISPR-like
images of privacy attributes, drawn from one procedural world (Wu et al. section 4.2).

The world: one person acts in an outdoor scene (sky, ground with texture, three background
blocks such as buildings or trees, all colours drawn per item), seen from the side, facing left or
right, with clothes, skin and hair of their own; lighting, sensor noise and position vary.

* **Actions** (`ACTIONS`, 12 classes: more than the SBU stand-in's 8, and done by one person):
  motion of the limbs and the body over the clip (waving, clapping, jumping jacks, squats,
  punches, a kick, walking, running, jumping, arm circles, a bow, raising both arms).
* **Privacy attributes** (`ATTRIBUTES`, 8): visual properties of the same people, each present
  independently of the action with its own rate, in the videos as in the images:
  `face_visible` (the face is turned to the camera: skin and a white eye, not the back of the head;
  VISPR's a9_face_complete), `exposed_skin` (bare arms and shins; a12_semi_nudity), `logo` (a
  light badge with a dark bar of "text" on the shirt), `hat` (a yellow hard hat; a46_occupation),
  `held_object` (a bright bag or racket in the hand; a58_hobbies / a59_sports), `bright_hair`
  (blond or red instead of dark; a6_hair_color), `dark_skin` (a17_color) and `companion` (a second
  person stands by; a64_rel_personal).

`SyntheticUCF101` is the task set: clips of the action (labels: `actions`, balanced round-robin).
Its clips carry the attributes too (`attributes`), which is what a privacy model trained on the
images must not be able to read in f_d(X), but they are not labels of the task set.
`SyntheticVISPR` is the privacy set: single frames (one-frame clips `[3, 1, H, W]`) of the same
world at a random moment of a random action, labelled with the multi-hot `attributes`.

Every item is a pure function of (seed, set, split, index): its own random stream of uniform
draws decides everything, so items never depend on each other or on the rendering chunk. A
split is rendered on first use (vectorised torch, in chunks) and kept in memory as uint8.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset

from raypriv.method.data.drawing import HEAD_R, body_parts, bump, capsule, lerp, light, skeleton
from raypriv.method.data.presets import Preset, get_preset
from raypriv.method.data.types import SPLITS, Sample

ACTIONS = ("wave", "clap", "jumping_jacks", "squat", "punch", "kick", "walk", "run", "jump", "arm_circles", "bow",
           "raise_arms")
ATTRIBUTES = ("face_visible", "exposed_skin", "logo", "hat", "held_object", "bright_hair", "dark_skin", "companion")
ATTRIBUTE_RATES = (0.5, 0.35, 0.3, 0.25, 0.3, 0.3, 0.4, 0.3)  # each attribute's share of the items
# Videos per action and images per split, by preset name (the clip size is the preset's).
VIDEOS_PER_ACTION = {
    "tiny": {"train": 2, "val": 1, "test": 1},
    "small": {"train": 24, "val": 6, "test": 10},
    "laptop": {"train": 40, "val": 10, "test": 16},
    "paper": {"train": 100, "val": 25, "test": 40},
}
IMAGES = {
    "tiny": {"train": 48, "val": 24, "test": 24},
    "small": {"train": 600, "val": 150, "test": 300},
    "laptop": {"train": 1200, "val": 300, "test": 600},
    "paper": {"train": 4000, "val": 1000, "test": 2000},
}
_SETS = {"videos": 0, "images": 1}
_SPLIT_IDS = {name: i for i, name in enumerate(SPLITS)}
_NUM_DRAWS = 72  # uniform numbers per item; each property below reads fixed slots
_ATTR_SLOT, _LIGHT_SLOT = 56, 40
_LIGHT_SKIN = ((0.96, 0.80, 0.69), (0.87, 0.67, 0.52), (0.76, 0.53, 0.38))
_DARK_SKIN = ((0.55, 0.37, 0.25), (0.36, 0.23, 0.15))
_DARK_HAIR = ((0.08, 0.06, 0.05), (0.25, 0.15, 0.08))
_BRIGHT_HAIR = ((0.95, 0.85, 0.45), (0.85, 0.35, 0.12))
_HAT, _LOGO_TEXT, _EYE = (0.97, 0.78, 0.08), (0.08, 0.08, 0.1), (0.97, 0.97, 0.97)
_LOGOS = ((0.97, 0.97, 0.95), (0.98, 0.9, 0.3))
_OBJECTS = ((0.9, 0.1, 0.8), (0.1, 0.85, 0.9))


def draws(seed: int, kind: str, split: str, n: int) -> torch.Tensor:
    """`[n, _NUM_DRAWS]` uniform numbers: item i of (seed, kind, split) from its own stream."""
    rows = [np.random.default_rng(np.random.SeedSequence([seed, _SETS[kind], _SPLIT_IDS[split], i])).random(_NUM_DRAWS)
            for i in range(n)]
    return torch.as_tensor(np.stack(rows), dtype=torch.float32) if n else torch.zeros(0, _NUM_DRAWS)


def attributes_of(u: torch.Tensor) -> torch.Tensor:
    """The items' multi-hot attributes (float32 `[n, 8]`) from their draws."""
    return (u[:, _ATTR_SLOT:_ATTR_SLOT + len(ATTRIBUTES)] < torch.tensor(ATTRIBUTE_RATES)).float()


def _counts(table: dict, preset: Preset, split: str) -> int:
    if preset.name not in table:
        raise ValueError(f"the synthetic UCF-101 / VISPR world has no sizes for preset {preset.name!r}; "
                         f"presets: {', '.join(table)}")
    return table[preset.name][split]


class SyntheticUCF101(Dataset):
    """UCF-101-like action clips of one split (`Sample`s with identity -1), balanced over `ACTIONS`."""

    action_names = ACTIONS
    num_actions = len(ACTIONS)

    def __init__(self, split: str, *, preset: str | Preset = "laptop", seed: int = 0) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        self.split, self.preset, self.seed = split, get_preset(preset), seed
        n = _counts(VIDEOS_PER_ACTION, self.preset, split) * len(ACTIONS)
        self._u = draws(seed, "videos", split, n)
        self.actions = torch.arange(n, dtype=torch.int64) % len(ACTIONS)
        self.attributes = attributes_of(self._u)  # what f_d must hide; not a label of this set
        self._clips: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.actions)

    def __getitem__(self, index: int) -> Sample:
        return Sample(clip=self.tensors()[0][index].float().div_(255), action=int(self.actions[index]), identity=-1)

    def tensors(self) -> tuple[torch.Tensor]:
        """The whole split as uint8 clips `[N, 3, T, H, W]`."""
        if self._clips is None:
            t = self.preset.frames
            tt = torch.linspace(0, 1, t).expand(len(self), t)
            speed = lerp(self._u[:, 0:1], 0.75, 1.0)
            tau = lerp(self._u[:, 1:2], 0.0, 1.0) * (1 - speed) + speed * tt
            self._clips = render(self._u, self.actions, tau, tt, self.preset)
        return (self._clips,)


class SyntheticVISPR(Dataset):
    """VISPR-like images of one split: one-frame clips `[3, 1, H, W]` with multi-hot `attributes`."""

    attribute_names = ATTRIBUTES
    num_attributes = len(ATTRIBUTES)

    def __init__(self, split: str, *, preset: str | Preset = "laptop", seed: int = 0) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        self.split, self.preset, self.seed = split, get_preset(preset), seed
        self._u = draws(seed, "images", split, _counts(IMAGES, self.preset, split))
        self.attributes = attributes_of(self._u)
        self._clips: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.attributes)

    def __getitem__(self, index: int) -> Sample:
        return Sample(clip=self.tensors()[0][index].float().div_(255), action=-1, identity=-1,
                      attributes=self.attributes[index])

    def tensors(self) -> tuple[torch.Tensor]:
        """The whole split as uint8 one-frame clips `[N, 3, 1, H, W]`."""
        if self._clips is None:
            # a random moment of a random action: the images show the poses the videos do
            actions = (self._u[:, 52] * len(ACTIONS)).long().clamp(max=len(ACTIONS) - 1)
            self._clips = render(self._u, actions, self._u[:, 53:54], torch.zeros(len(self), 1), self.preset)
        return (self._clips,)


def render(u: torch.Tensor, actions: torch.Tensor, tau: torch.Tensor, tt: torch.Tensor, preset: Preset,
           chunk_pixels: int = 24_000_000) -> torch.Tensor:
    """uint8 clips `[n, 3, t, H, W]` of items with draws `u`, at action times `tau` `[n, t]`
    (`tt` `[n, t]`: the clip's own time in [0, 1], for the lighting's flicker)."""
    n, t, h, w = len(u), tau.shape[1], preset.height, preset.width
    clips = torch.empty((n, 3, t, h, w), dtype=torch.uint8)
    step = max(1, chunk_pixels // (t * h * w * 24))  # memory grows with clips x frames x pixels
    with torch.no_grad():
        for lo in range(0, n, step):
            sl = slice(lo, min(n, lo + step))
            rgb = _render(u[sl], actions[sl], tau[sl], tt[sl], h, w)
            clips[sl] = (rgb * 255).round_().clamp_(0, 255).to(torch.uint8)
    return clips


def _render(u, actions, tau, tt, h: int, w: int) -> torch.Tensor:
    """RGB `[n, 3, t, h, w]` in [0, 1]."""
    scale = float(min(h, w))
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) / scale
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) / scale
    py, px = torch.meshgrid(ys, xs, indexing="ij")
    attrs = attributes_of(u).bool()
    look = _looks(u, attrs)
    # The companion stands still: drawn once into the static scene, before it is repeated over time.
    img = _draw(_background(u, px, py, scale, w / scale), _companion(u, w / scale), look["companion"], attrs[:, 7],
                px, py, scale)
    img = img.expand(-1, -1, tau.shape[1], -1, -1)
    person = _pose(u, actions, tau, w / scale)
    img = _draw(img, person, look, None, px, py, scale)
    img = _accessories(img, person, look, attrs, px, py, scale)
    return light(img, u, tt, first=_LIGHT_SLOT).clamp(0, 1)


def _pick(u: torch.Tensor, palette: tuple) -> torch.Tensor:
    """One colour of `palette` per item, chosen by the draws `u` `[n]`: `[n, 3]`."""
    table = torch.tensor(palette, dtype=torch.float32)
    return table[(u * len(palette)).long().clamp(max=len(palette) - 1)]


def _looks(u: torch.Tensor, attrs: torch.Tensor) -> dict:
    """Colours `[n, 3]` of the person's parts (attributes applied) and of the companion."""
    skin = torch.where(attrs[:, 6:7], _pick(u[:, 38], _DARK_SKIN), _pick(u[:, 38], _LIGHT_SKIN))
    hair = torch.where(attrs[:, 5:6], _pick(u[:, 39], _BRIGHT_HAIR), _pick(u[:, 39], _DARK_HAIR))
    shirt = lerp(u[:, 32:35], 0.1, 0.85)
    trousers = lerp(u[:, 35:38], 0.05, 0.5)
    exposed, face = attrs[:, 1:2], attrs[:, 0:1]
    look = {"shirt": shirt, "trousers": trousers, "skin": skin, "hair": hair,
            "arm": torch.where(exposed, skin, shirt), "shin": torch.where(exposed, skin, trousers),
            "head": torch.where(face, skin, hair), "logo": _pick(u[:, 64], _LOGOS), "object": _pick(u[:, 65], _OBJECTS)}
    companion_shirt = lerp(u[:, 49:52], 0.1, 0.85)
    look["companion"] = {"shirt": companion_shirt, "trousers": trousers.flip(1), "skin": skin, "hair": hair,
                         "arm": companion_shirt, "shin": trousers.flip(1), "head": skin}
    return look


_PART_COLOURS = {"far_upper_arm": "arm", "far_forearm": "arm", "near_upper_arm": "arm", "near_forearm": "arm",
                 "back_shin": "shin", "front_shin": "shin", "head": "head"}


def _background(u, px, py, scale: float, width: float) -> torch.Tensor:
    """The static scene `[n, 3, 1, h, w]`: sky, textured ground, three blocks on the horizon."""
    n = len(u)
    horizon = lerp(u[:, 6], 0.5, 0.68).view(n, 1, 1, 1)
    sky = lerp(u[:, 7:10], 0.45, 0.95).view(n, 3, 1, 1) * (1 - 0.35 * py)
    ground = lerp(u[:, 10:13], 0.15, 0.6).view(n, 3, 1, 1) * (
        1 + 0.12 * torch.sin(2 * math.pi * lerp(u[:, 13], 6, 14).view(n, 1, 1, 1) * (px + 2 * py)))
    below = ((py - horizon) * scale + 0.5).clamp(0, 1)  # [n, 1, h, w]
    img = sky + below * (ground - sky)
    for k in range(3):
        s = u[:, 14 + 6 * k: 20 + 6 * k]
        left = lerp(s[:, 0], -0.1, width).view(n, 1, 1, 1)
        right = left + lerp(s[:, 1], 0.08, 0.3).view(n, 1, 1, 1)
        top = horizon - lerp(s[:, 2], 0.1, 0.4).view(n, 1, 1, 1)
        inside = (((px - left).minimum(right - px)) * scale + 0.5).clamp(0, 1) * ((py - top) * scale + 0.5).clamp(0, 1)
        block = (1 - below) * inside
        img = img + block * (lerp(s[:, 3:6], 0.1, 0.8).view(n, 3, 1, 1) - img)
    return img.unsqueeze(2)


def _draw(img, joints: dict, look: dict, present, px, py, scale: float) -> torch.Tensor:
    """`img` with the stick figure `joints` painted in `look`'s colours (only where `present`, if given)."""
    n = img.shape[0]
    keep = present.float().view(n, 1, 1, 1) if present is not None else 1.0
    for part, (p0, p1, radius, colour) in body_parts(joints):
        cov = capsule(px, py, p0, p1, radius, scale) * keep  # [n, t, h, w]
        col = look[_PART_COLOURS.get(part, colour)].view(n, 3, 1, 1, 1)
        img = img + cov.unsqueeze(1) * (col - img)
    return img


def _accessories(img, j: dict, look: dict, attrs: torch.Tensor, px, py, scale: float) -> torch.Tensor:
    """The attributes drawn on the person: the logo, the hard hat, the held object and the eye."""
    n = img.shape[0]
    r = HEAD_R * j["height"].expand_as(j["neck"][..., 0])  # [n, t]: the head's radius
    rr = r.unsqueeze(-1)
    sideways = torch.stack([j["face_dir"].expand_as(r), torch.zeros_like(r)], -1)  # towards the face
    up = torch.stack([torch.zeros_like(r), -torch.ones_like(r)], -1)
    chest = j["neck"] + 0.3 * (j["hip"] - j["neck"]) + sideways * 0.25 * rr
    eye = j["head"] + sideways * 0.45 * rr + up * 0.1 * rr
    brim = j["head"] + up * 0.8 * rr
    dark, hat, white = (torch.tensor(c).expand(n, 3) for c in (_LOGO_TEXT, _HAT, _EYE))
    shapes = [  # (attribute index, p0, p1, radius, colour)
        (2, chest, chest, 0.75 * r, look["logo"]),
        (2, chest - sideways * 0.4 * rr, chest + sideways * 0.4 * rr, 0.22 * r, dark),
        (3, brim - sideways * 0.9 * rr, brim + sideways * 0.9 * rr, 0.5 * r, hat),
        (4, j["far_hand"], j["far_hand"] - up * 1.6 * rr, 0.9 * r, look["object"]),
        (0, eye, eye, 0.3 * r, white),  # the white of an eye: a face seen whatever the skin and hair
    ]
    for attr, p0, p1, radius, colour in shapes:
        cov = capsule(px, py, p0, p1, radius, scale) * attrs[:, attr].float().view(n, 1, 1, 1)
        img = img + cov.unsqueeze(1) * (colour.reshape(n, 3, 1, 1, 1) - img)
    return img


def _pose(u: torch.Tensor, actions: torch.Tensor, tau: torch.Tensor, width: float) -> dict:
    """The acting person's joints `[n, t, 2]` (plus its `face_dir` `[n, 1]`)."""
    n = len(u)
    m = _motion(actions, tau, u)
    face_dir = torch.where(u[:, 2:3] < 0.5, -1.0, 1.0)
    height = lerp(u[:, 4:5], 0.62, 0.78)
    ground = 0.93 - lerp(u[:, 67:68], 0.0, 0.05)
    x = lerp(u[:, 3:4], 0.4, width - 0.4) + face_dir * m["travel"]
    joints = skeleton(x=x, ground=ground - m["lift"], height=height * (1 - m["crouch"]),
                      build=lerp(u[:, 5:6], 0.85, 1.25), face_dir=face_dir,
                      near_sh=m["near_sh"], near_el=m["near_el"], far_sh=m["far_sh"], far_el=m["far_el"],
                      gait=m["gait"], kick=m["kick"], kick_knee=m["kick_knee"], lean=m["lean"])
    joints["face_dir"] = face_dir.view(n, 1)
    return joints


def _companion(u: torch.Tensor, width: float) -> dict:
    """The companion standing still beside the person, one frame `[n, 1, 2]` (it does not move)."""
    n = len(u)
    side = torch.where(u[:, 48:49] < 0.5, -1.0, 1.0)
    zero = torch.zeros(n, 1)
    x = lerp(u[:, 3:4], 0.4, width - 0.4) + side * 0.3
    return skeleton(x=x, ground=torch.full((n, 1), 0.9), height=0.8 * lerp(u[:, 4:5], 0.62, 0.78),
                    build=torch.ones(n, 1), face_dir=-side, near_sh=zero + 0.1, near_el=zero + 0.2,
                    far_sh=zero - 0.1, far_el=zero + 0.2, gait=zero, kick=zero, kick_knee=zero, lean=zero)


def _motion(actions: torch.Tensor, tau: torch.Tensor, u: torch.Tensor) -> dict:
    """Joint angles and body offsets `[n, t]` of every action at times `tau` (one row per item)."""
    a = actions.view(-1, 1)
    is_ = lambda name: (a == ACTIONS.index(name)).float()  # noqa: E731
    wave = lambda f: torch.sin(2 * math.pi * f * tau)  # noqa: E731
    sway = lerp(u[:, 54:55], 0.03, 0.2) * torch.sin(2 * math.pi * lerp(u[:, 55:56], 0.5, 2) * tau + 6.28 * u[:, 66:67])
    jacks = is_("jumping_jacks") * (0.5 - 0.5 * torch.cos(2 * math.pi * 2 * tau))
    squat = is_("squat") * (0.5 - 0.5 * torch.cos(2 * math.pi * 1.5 * tau))
    near_punch = is_("punch") * (bump(tau, 0.1, 0.35) + bump(tau, 0.55, 0.8))
    far_punch = is_("punch") * (bump(tau, 0.3, 0.55) + bump(tau, 0.75, 1.0))
    walk, run = is_("walk"), is_("run")
    jump = is_("jump") * wave(1.25).abs()
    circle = is_("arm_circles") * 2 * math.pi * 2 * tau
    raise_ = is_("raise_arms") * bump(tau, 0.0, 2.0)  # up by the clip's end, from hanging
    clap = is_("clap") * (0.5 + 0.5 * wave(3))
    kick = is_("kick") * bump(tau, 0.25, 0.75)
    swing = 0.4 * walk * wave(2) + 0.8 * run * wave(3.5)
    return dict(
        near_sh=0.12 + sway + 2.7 * is_("wave") + 1.4 * is_("clap") + 2.8 * jacks + 1.4 * squat + 0.5 * is_("punch")
        + 1.1 * near_punch + swing + 2.5 * jump + circle + 0.3 * is_("bow") * bump(tau, 0.1, 0.9) + 2.9 * raise_,
        far_sh=-0.1 - sway + 1.4 * is_("clap") - 2.8 * jacks + 1.4 * squat + 0.5 * is_("punch") + 1.1 * far_punch
        - swing + 2.5 * jump + (circle + math.pi * is_("arm_circles")) + 2.9 * raise_,
        near_el=0.15 + is_("wave") * (0.6 + 0.5 * wave(3)) + 0.8 * clap + is_("punch") * (1.4 - 1.3 * near_punch)
        + 1.3 * run,
        far_el=0.15 + 0.8 * clap + is_("punch") * (1.4 - 1.3 * far_punch) + 1.3 * run,
        gait=0.35 * jacks + 0.45 * walk * wave(2) + 0.75 * run * wave(3.5),
        kick=kick, kick_knee=0.6 * kick * (1 - bump(tau, 0.4, 0.6)),
        lean=0.02 * sway + 0.12 * run + 0.45 * is_("bow") * bump(tau, 0.1, 0.9),
        travel=(0.12 * walk + 0.28 * run) * (tau - 0.5),
        lift=0.12 * jump + 0.03 * run * wave(3.5).abs() + 0.04 * jacks,
        crouch=0.28 * squat,
    )
