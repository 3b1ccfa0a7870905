"""On-device cost: what f_d costs on the camera next to what f_T costs in the cloud, per clip.

    python bench/run_all.py --only device_cost_ratio [--tiny]

FLOPs come from `torch.utils.flop_counter.FlopCounterMode` on the meta device (as `raypriv
models`). Its convention: a convolution or matrix product of M multiply-accumulates counts as
2·M FLOPs (bias, normalisation, activations, pooling and interpolation are not counted). f_d runs
on every frame of the clip (T frames), f_T once on the degraded clip with f_d's output channels.
Latency is measured on the CPU, one clip (batch 1), eval mode, no autograd, f_d and f_T
interleaved so a busy machine slows both alike.

The figure is f_T ÷ f_d in FLOPs for the `full` profile's models at the paper's clip size
(16×112×112); the `quick` profile at the laptop preset and every registered degrader at the
paper size (what a cheaper f_d would cost) are reported beside it. `--tiny` measures the
`smoke` profile's models at the tiny preset instead.
"""

from __future__ import annotations

import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from _common import SPACE, Figure, log, median

GOAL = 45.0  # Wu et al.'s f_T / f_d cost ratio


def measure(*, tiny: bool, repeats: int) -> dict[str, Figure]:
    from raypriv.method.config import load_run_config
    from raypriv.method.data.presets import get_preset
    from raypriv.method.data.types import SBU_ACTIONS
    from raypriv.method.models import DEGRADERS

    profiles = ["smoke"] if tiny else ["full", "quick"]
    rows = {}
    for profile in profiles:
        cfg = load_run_config(SPACE, profile)
        preset = get_preset(cfg.data.preset)
        rows[profile] = _pair(cfg.models.degrader, cfg.models.target, preset, len(SBU_ACTIONS), repeats=repeats)
        _print_pair(profile, preset, rows[profile])
    head = rows[profiles[0]]
    # Every registered degrader against the headline profile's f_T at its clip size (FLOPs only).
    cfg = load_run_config(SPACE, profiles[0])
    preset = get_preset(cfg.data.preset)
    alternatives = {}
    for name in DEGRADERS.names(include_tiny=True):
        flops, params, _ = _flops(name, "degrader", preset)
        target_flops, _, _ = _flops(cfg.models.target, "target", preset, classes=len(SBU_ACTIONS),
                                    in_channels=_out_channels(name))
        alternatives[name] = {"flops": flops, "params": params, "target_flops": target_flops,
                              "ratio": target_flops / flops}
    log(f"every f_d against {cfg.models.target} at {preset.frames}x{preset.height}x{preset.width} (FLOPs):")
    for name, a in sorted(alternatives.items(), key=lambda kv: -kv[1]["ratio"]):
        log(f"  {name:20s} {a['flops'] / 1e9:9.3f} GFLOP/clip  {a['params']:9,d} params  f_T/f_d {a['ratio']:7.1f}x")
    profile = profiles[0]
    return {"device_cost_ratio": Figure(
        value=head["flop_ratio"], goal=GOAL, unit="x (f_T FLOPs / f_d FLOPs per clip)", better=">=",
        command=f"python bench/run_all.py --only device_cost_ratio{' --tiny' if tiny else ''}", tiny=tiny,
        details={"convention": "FlopCounterMode: 2 FLOPs per multiply-accumulate of conv/matmul; "
                               "norm, activation, pooling, interpolation not counted",
                 **{p: r for p, r in rows.items()}, "degraders_vs_target": alternatives},
        note=f"{profile} profile: {head['degrader']} vs {head['target']} at {head['clip']}",
    )}


def _out_channels(degrader: str) -> int:
    from raypriv.method.models import create_model

    return create_model("degrader", degrader).out_channels


def _flops(name: str, role: str, preset, *, classes: int | None = None, in_channels: int = 3):
    """(FLOPs per clip, parameters, FLOPs per top-level layer group) on the meta device."""
    from raypriv.method.models import count_parameters, create_model

    kwargs = {"num_classes": classes} if classes else {}
    if role != "degrader":
        kwargs["in_channels"] = in_channels
    model = create_model(role, name, **kwargs).eval()
    params = count_parameters(model)
    model.to("meta")
    clip = torch.zeros(1, in_channels, preset.frames, preset.height, preset.width, device="meta")
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(clip)
    return counter.get_total_flops(), params, _layer_groups(counter.get_flop_counts(), type(model).__name__)


def _layer_groups(counts: dict, root: str) -> dict[str, int]:
    """FLOPs per top-level child of the model; a child holding over 90 % (a wrapper such as C3D's
    `features`) is replaced by its own children, so the table names the layers that cost."""
    flops = {key: sum(ops.values()) for key, ops in counts.items() if key != "Global"}

    def children(prefix: str) -> dict[str, int]:
        depth = prefix.count(".") + 1
        return {k: v for k, v in flops.items() if k.startswith(prefix + ".") and k.count(".") == depth}

    total = flops.get(root, 0) or 1
    groups = children(root)
    while groups:
        name, value = max(groups.items(), key=lambda kv: kv[1])
        inner = children(name)
        if value < 0.9 * total or not inner:
            break
        del groups[name]
        groups.update(inner)
    return {k.removeprefix(root + "."): v for k, v in groups.items()}


def _latency(model: torch.nn.Module, clip: torch.Tensor) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        model(clip)
    return time.perf_counter() - start


def _pair(degrader_name: str, target_name: str, preset, classes: int, *, repeats: int) -> dict:
    from raypriv.method.models import count_parameters, create_model

    degrader = create_model("degrader", degrader_name).eval()
    channels = degrader.out_channels
    target = create_model("target", target_name, num_classes=classes, in_channels=channels).eval()
    d_flops, d_params, d_groups = _flops(degrader_name, "degrader", preset)
    t_flops, t_params, t_groups = _flops(target_name, "target", preset, classes=classes, in_channels=channels)
    clip = torch.rand(1, 3, preset.frames, preset.height, preset.width)
    degraded = torch.rand(1, channels, preset.frames, preset.height, preset.width)
    _latency(degrader, clip), _latency(target, degraded)  # warm-up
    d_times, t_times = [], []
    for _ in range(repeats):
        d_times.append(_latency(degrader, clip))
        t_times.append(_latency(target, degraded))
    d_lat, t_lat = median(d_times), median(t_times)
    return {
        "degrader": degrader_name, "target": target_name,
        "clip": f"{preset.frames}x{preset.height}x{preset.width} (preset {preset.name})",
        "degrader_flops": d_flops, "target_flops": t_flops, "flop_ratio": t_flops / d_flops,
        "degrader_params": count_parameters(degrader), "target_params": count_parameters(target),
        "degrader_latency_s": d_lat, "target_latency_s": t_lat, "latency_ratio": t_lat / d_lat,
        "latency_repeats": repeats, "threads": torch.get_num_threads(),
        "degrader_flops_by_layer": {k: v / d_flops for k, v in sorted(d_groups.items(), key=lambda kv: -kv[1])},
        "target_flops_by_layer": {k: v / t_flops for k, v in sorted(t_groups.items(), key=lambda kv: -kv[1])},
    }


def _print_pair(profile: str, preset, r: dict) -> None:
    log(f"{profile}: clip {r['clip']}, CPU latency median of {r['latency_repeats']}, {r['threads']} thread(s)")
    log(f"  f_d {r['degrader']:18s} {r['degrader_flops'] / 1e9:9.3f} GFLOP  {r['degrader_params']:11,d} params  "
        f"{1e3 * r['degrader_latency_s']:9.1f} ms/clip")
    log(f"  f_T {r['target']:18s} {r['target_flops'] / 1e9:9.3f} GFLOP  {r['target_params']:11,d} params  "
        f"{1e3 * r['target_latency_s']:9.1f} ms/clip")
    log(f"  f_T / f_d: {r['flop_ratio']:.2f}x FLOPs, {r['latency_ratio']:.2f}x latency; f_d FLOPs by layer: "
        + ", ".join(f"{k} {100 * v:.0f} %" for k, v in r["degrader_flops_by_layer"].items()))
    log("  f_T FLOPs by layer: " + ", ".join(f"{k} {100 * v:.0f} %" for k, v in list(r["target_flops_by_layer"].items())[:5]))
