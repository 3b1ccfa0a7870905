"""The figures measured on real `raypriv sweep` runs (Ray Tune + Optuna + Ray Train + MLflow):

    python bench/run_all.py --only time_to_front_s trial_overhead tradeoff_hv_ratio concurrency_speedup [--tiny]

- `time_to_front_s`: wall time of `raypriv sweep sbu --synthetic --profile quick` (the whole
  command: Ray start, 8 trials 2 at a time, the Pareto report, Ray stop).
- `trial_overhead`: for the trials of that same sweep, (trial wall time − trainer time) ÷ trial
  wall time, median over trials. Trial wall time is the Tune function's (which builds and fits
  the `TorchTrainer`), trainer time `run_training`'s own total; the driver logs both on the sweep's
  MLflow parent run (`trial_seconds`, `trial_overhead_seconds`), where this reads them.
- `tradeoff_hv_ratio`: hypervolume of that sweep's Pareto front ÷ hypervolume of the front of
  the downsampling baselines (`raw` and `downsample_s{2,4,8,16}` from `raypriv baselines` with the
  same profile, so the same data, test split and evaluation settings). Hypervolume is
  `raypriv.report.pareto.hypervolume` with its reference point (A_T = 0, A_B^N = 1).
- `scaling_speedup`: one trial of the profile (`--trials 1 --concurrency 1`) with one Ray Train
  worker and with two data-parallel workers (`--workers 2`): trial wall time with 1 ÷ with 2
  (each worker has the profile's `cpus_per_worker`, so two workers use twice the CPUs).
- `concurrency_speedup`: the same sweep run twice with `--sampler random` (so both runs train the
  very same trials), at `--concurrency 1` and `--concurrency 2`, the profile's resources
  otherwise (`--concurrency-trials N` trials each, default the profile's 8); throughput =
  finished trials ÷ (last trial told − first trial asked, Optuna's timestamps), which leaves out
  Ray's start and the report. Whole-command throughput is printed too.

`--tiny` runs the `smoke` profile instead: one 2-trial sweep (2 at a time) serves the first three
figures and the concurrency-2 arm, a 1-trial sweep the concurrency-1 arm and the one-worker arm of
the scaling figure, and a 1-trial sweep with two workers its other arm (a few minutes).
"""

from __future__ import annotations

import math

from _common import Figure, SweepRun, Workspace, log, median

DOWNSAMPLING = ("raw", "downsample_s2", "downsample_s4", "downsample_s8", "downsample_s16")
TINY_TRIALS = 2


def _profile(tiny: bool) -> str:
    return "smoke" if tiny else "quick"


def _front_sweep(ws: Workspace, tiny: bool) -> SweepRun:
    """`raypriv sweep sbu --synthetic --profile quick` as shipped (tiny: smoke with 2 trials)."""
    return ws.sweep(_profile(tiny), trials=TINY_TRIALS if tiny else None)


def _command(name: str, tiny: bool) -> str:
    return f"python bench/run_all.py --only {name}{' --tiny' if tiny else ''}"


def time_to_front_s(ws: Workspace, *, tiny: bool, **_) -> dict[str, Figure]:
    run = _front_sweep(ws, tiny)
    complete = sum(run.complete)
    log(f"{run.command}: {run.seconds:.0f} s, {complete} of {len(run.complete)} trials complete")
    return {"time_to_front_s": Figure(
        value=run.seconds, goal=1200.0, unit="s (wall time of the sweep command)", better="<=",
        command=_command("time_to_front_s", tiny), tiny=tiny,
        details={"sweep_command": run.command, "trials": len(run.complete), "complete": complete,
                 "trial_span_s": run.trial_span_seconds, "trial_seconds": run.trial_seconds},
        note=f"`{run.command}`: {complete}/{len(run.complete)} trials complete",
    )}


def trial_overhead(ws: Workspace, *, tiny: bool, **_) -> dict[str, Figure]:
    run = _front_sweep(ws, tiny)
    shares = {n: run.overhead_seconds[n] / run.trial_seconds[n] for n in run.overhead_seconds if n in run.trial_seconds}
    if not shares:
        value = math.nan
    else:
        value = median(list(shares.values()))
    overhead = median(list(run.overhead_seconds.values()))
    wall = median(list(run.trial_seconds.values()))
    log(f"trial overhead: median {overhead:.1f} s of {wall:.1f} s per trial ({100 * value:.1f} %), "
        f"{len(shares)} trials of `{run.command}`")
    return {"trial_overhead": Figure(
        value=value, goal=0.10, unit="fraction of trial wall time outside training", better="<=",
        command=_command("trial_overhead", tiny), tiny=tiny,
        details={"sweep_command": run.command, "median_overhead_s": overhead, "median_trial_s": wall,
                 "per_trial": {f"trial_{n:04d}": {"trial_s": run.trial_seconds[n], "overhead_s": run.overhead_seconds[n]}
                               for n in sorted(shares)}},
        note=f"median {overhead:.1f} s overhead of {wall:.1f} s per trial (TorchTrainer path, {len(shares)} trials)",
    )}


def tradeoff_hv_ratio(ws: Workspace, *, tiny: bool, **_) -> dict[str, Figure]:
    from raypriv.report.pareto import hypervolume, pareto_mask

    run = _front_sweep(ws, tiny)
    baseline_command, rows = ws.baselines(_profile(tiny), DOWNSAMPLING)
    sweep_hv = hypervolume(run.target_acc, run.privacy_acc)
    base_t = [r.target_acc for r in rows]
    base_p = [r.privacy_acc for r in rows]
    base_hv = hypervolume(base_t, base_p)
    value = sweep_hv / base_hv if base_hv > 0 else math.nan
    on_front = pareto_mask(run.target_acc, run.privacy_acc)
    front = [{"trial": n, "target_acc": run.target_acc[n], "privacy_acc": run.privacy_acc[n]}
             for n in range(len(on_front)) if on_front[n]]
    base_front = pareto_mask(base_t, base_p)
    baselines = [{"method": r.method, "target_acc": r.target_acc, "privacy_acc": r.privacy_acc,
                  "on_front": bool(f)} for r, f in zip(rows, base_front)]
    log(f"hypervolume (reference A_T 0, A_B^N 1): sweep front {sweep_hv:.4f} ({len(front)} points), "
        f"downsampling front {base_hv:.4f}")
    for b in baselines:
        log(f"  {b['method']:15s} A_T {100 * b['target_acc']:5.1f} %  A_B^N {100 * b['privacy_acc']:5.1f} %"
            f"{'  (front)' if b['on_front'] else ''}")
    for p in front:
        log(f"  trial_{p['trial']:04d}     A_T {100 * p['target_acc']:5.1f} %  A_B^N {100 * p['privacy_acc']:5.1f} %")
    return {"tradeoff_hv_ratio": Figure(
        value=value, goal=1.3, unit="x (sweep front HV / downsampling front HV)", better=">=",
        command=_command("tradeoff_hv_ratio", tiny), tiny=tiny,
        details={"reference": {"target_acc": 0.0, "privacy_acc": 1.0}, "sweep_command": run.command,
                 "baselines_command": baseline_command, "sweep_hv": sweep_hv, "baselines_hv": base_hv,
                 "sweep_front": front, "baselines": baselines},
        note=f"HV {sweep_hv:.3f} (sweep, {len(front)} front points) vs {base_hv:.3f} (raw + downsample_s2..s16)"
             + ("" if base_hv > 0 else "; the baselines' front has zero hypervolume"),
    )}


def concurrency_speedup(ws: Workspace, *, tiny: bool, concurrency_trials: int | None = None, **_) -> dict[str, Figure]:
    if tiny:
        # The front sweep (2 trials, 2 at a time) is the c=2 arm and one trial alone the c=1 arm: with
        # 2 trials TPE is still in its seeded random start-up, so both arms draw what --sampler random
        # would, and the c=2 arm costs nothing beyond the sweep the other figures already ran.
        arms = {1: ws.sweep(_profile(tiny), trials=1, concurrency=1), 2: _front_sweep(ws, tiny)}
    else:
        arms = {c: ws.sweep(_profile(tiny), trials=concurrency_trials, concurrency=c, sampler="random") for c in (1, 2)}

    def per_hour(run: SweepRun, seconds: float) -> float:
        return 3600.0 * run.finished_trials / seconds if seconds > 0 else math.nan

    span = {c: per_hour(r, r.trial_span_seconds) for c, r in arms.items()}
    whole = {c: per_hour(r, r.seconds) for c, r in arms.items()}
    value = span[2] / span[1]
    for c, r in arms.items():
        log(f"concurrency {c}: {r.finished_trials} trials, trial span {r.trial_span_seconds:.0f} s "
            f"({span[c]:.1f} trials/h), whole command {r.seconds:.0f} s ({whole[c]:.1f} trials/h)")
    return {"concurrency_speedup": Figure(
        value=value, goal=1.7, unit="x (trials/h at 2 concurrent / at 1)", better=">=",
        command=_command("concurrency_speedup", tiny), tiny=tiny,
        details={"sweep_commands": {c: r.command for c, r in arms.items()},
                 "trials_per_hour_span": span, "trials_per_hour_whole_command": whole,
                 "whole_command_ratio": whole[2] / whole[1],
                 "trial_span_s": {c: r.trial_span_seconds for c, r in arms.items()},
                 "command_s": {c: r.seconds for c, r in arms.items()},
                 "finished_trials": {c: r.finished_trials for c, r in arms.items()}},
        note=f"{span[1]:.1f} -> {span[2]:.1f} trials/h (whole command: {whole[2] / whole[1]:.2f}x); "
             + ("tiny: 1 trial alone vs the 2-trial front sweep" if tiny else "random sampler, same trials in both arms"),
    )}


def scaling_speedup(ws: Workspace, *, tiny: bool, **_) -> dict[str, Figure]:
    """Trial wall time with one Ray Train worker / with two data-parallel workers (one trial each)."""
    arms = {w: ws.sweep(_profile(tiny), trials=1, concurrency=1, workers=w) for w in (1, 2)}
    seconds = {w: next(iter(r.trial_seconds.values()), math.nan) for w, r in arms.items()}
    value = seconds[1] / seconds[2]
    log(f"one trial: {seconds[1]:.1f} s with 1 worker, {seconds[2]:.1f} s with 2")
    return {"scaling_speedup": Figure(
        value=value, goal=1.4, unit="x (trial wall time, 1 worker / 2 workers)", better=">=",
        command=_command("scaling_speedup", tiny), tiny=tiny,
        details={"sweep_commands": {w: r.command for w, r in arms.items()}, "trial_s": seconds},
        note=f"{seconds[1]:.0f} s with 1 worker, {seconds[2]:.0f} s with 2 (gloo, one CPU thread each)",
    )}
