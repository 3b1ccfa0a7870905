"""Search efficiency: how many trials multi-objective TPE needs to reach the hypervolume that random
search reaches in K trials (K = 32 by default), on the `quick` search space.

    python bench/run_all.py --only search_efficiency_trials [--search-trials K] [--search-seeds S]
                            [--search-objective real|synthetic] [--search-profile quick|smoke] [--tiny]

For each sampler (MO-TPE, NSGA-II, random: `raypriv.sweep.space.make_sampler`, as the sweep
configures them) and each seed 0..S-1, K trials are run and the hypervolume of the first k
trials' front is taken for k = 1..K (`raypriv.report.pareto.hypervolume_history`; reference
point A_T = 0, A_B^N = 1; a failed trial counts as a trial spent and adds nothing). The curves
are the median over seeds. The figure is the first k at which MO-TPE's median curve reaches
random search's median hypervolume at K; goal ≤ K/2 (16 for K = 32). If MO-TPE never reaches
it within K trials, the figure is K + 1 and the note says "not reached".

Objectives:
- `real` (default without --tiny): every trial is a real `raypriv sweep sbu --synthetic --profile
  quick --trials K --sampler S --seed s` trial (training + two-fold evaluation). 3 samplers × 3
  seeds × 32 quick trials is days of CPU on a 2-core machine: a GPU cluster's job.
- `synthetic` (default with --tiny): NOT raypriv training. A made-up analytic stand-in for
  (A_T, A_B^N) as a function of the quick space's parameters (γ trades action for privacy, M, the
  zoo and restarts help privacy, learning rates have an optimum, α costs privacy, plus seeded
  noise), fed to the same samplers with the sweep's concurrency (trials told in order, `concurrency`
  in flight). It tests this benchmark's code in seconds and says nothing about raypriv's search.
"""

from __future__ import annotations

import math
import random
from collections import deque

from _common import SPACE, Figure, Workspace, log, median

SAMPLERS = ("tpe", "nsga2", "random")


def measure(ws: Workspace, *, tiny: bool, trials: int, seeds: int, objective: str, profile: str) -> dict[str, Figure]:
    from raypriv.sweep.config import load_sweep_config

    space_profile = "quick" if objective == "synthetic" else profile
    config = load_sweep_config(SPACE, space_profile)
    curves: dict[str, list[list[float]]] = {}
    commands: list[str] = []
    for sampler in ("random", "tpe", "nsga2"):
        curves[sampler] = []
        for seed in range(seeds):
            if objective == "synthetic":
                curve = _synthetic_curve(config, sampler, seed, trials)
            else:
                run = ws.sweep(profile, trials=trials, sampler=sampler, seed=seed)
                commands.append(run.command)
                curve = _curve(run.target_acc, run.privacy_acc, trials)
            curves[sampler].append(curve)
            log(f"{sampler:6s} seed {seed}: hypervolume after {trials} trials {curve[-1]:.4f}")
    med = {s: [median([c[k] for c in cs]) for k in range(trials)] for s, cs in curves.items()}
    goal_hv = med["random"][-1]
    reached = [k + 1 for k in range(trials) if med["tpe"][k] >= goal_hv - 1e-12]
    value = float(reached[0]) if reached else float(trials + 1)
    per_seed = []
    for c in curves["tpe"]:
        hits = [k + 1 for k in range(trials) if c[k] >= goal_hv - 1e-12]
        per_seed.append(hits[0] if hits else None)
    checkpoints = sorted({k for k in (4, 8, 16, 32, trials) if k <= trials})
    label = ("SYNTHETIC objective (a made-up function of the quick space, not training)" if objective == "synthetic"
             else f"real {profile} sweeps")
    log(f"{label}: median hypervolume by trials " + "; ".join(
        f"{s}: " + ", ".join(f"{k}: {med[s][k - 1]:.3f}" for k in checkpoints) for s in SAMPLERS))
    log(f"MO-TPE reaches random search's {trials}-trial hypervolume {goal_hv:.4f} after "
        + (f"{value:.0f} trials" if reached else f"more than {trials} trials (not reached)"))
    return {"search_efficiency_trials": Figure(
        value=value, goal=trials / 2, unit=f"trials (MO-TPE to random's {trials}-trial HV)", better="<=",
        command=("python bench/run_all.py --only search_efficiency_trials"
                 + (" --tiny" if tiny else "") + f" --search-trials {trials} --search-seeds {seeds}"
                 + f" --search-objective {objective}" + ("" if objective == "synthetic" else f" --search-profile {profile}")),
        tiny=tiny or objective == "synthetic",
        details={"objective": label, "reference": {"target_acc": 0.0, "privacy_acc": 1.0}, "trials": trials,
                 "seeds": seeds, "concurrency": config.sweep.concurrency, "random_hv_at_K": goal_hv,
                 "median_hv_at": {s: {k: med[s][k - 1] for k in checkpoints} for s in SAMPLERS},
                 "tpe_trials_needed_per_seed": per_seed, "median_curves": med, "sweep_commands": commands},
        note=f"{label}, {seeds} seeds, K={trials}" + ("" if reached else f"; not reached within {trials} trials"),
    )}


def _curve(target_acc: list[float], privacy_acc: list[float], trials: int) -> list[float]:
    """Hypervolume after each of the first `trials` trials (a missing trial adds nothing)."""
    from raypriv.report.pareto import hypervolume_history

    t = (list(target_acc) + [math.nan] * trials)[:trials]
    p = (list(privacy_acc) + [math.nan] * trials)[:trials]
    return [float(h) for h in hypervolume_history(t, p)]


def _synthetic_curve(config, sampler: str, seed: int, trials: int) -> list[float]:
    """Run `sampler` on the SYNTHETIC objective with the sweep's concurrency (oldest trial told first)."""
    import optuna

    from raypriv.sweep.space import make_sampler, to_optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    concurrency = config.sweep.concurrency
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=make_sampler(sampler, seed=seed, trials=trials, concurrency=concurrency))
    distributions = to_optuna(config.space)
    pending: deque = deque()
    values: dict[int, tuple[float, float]] = {}

    def tell_oldest() -> None:
        trial = pending.popleft()
        values[trial.number] = synthetic_objective(trial.params, noise_seed=seed * 100_003 + trial.number)
        study.tell(trial, values[trial.number])

    for _ in range(trials):
        while len(pending) >= concurrency:
            tell_oldest()
        pending.append(study.ask(distributions))
    while pending:
        tell_oldest()
    ordered = [values[n] for n in sorted(values)]
    return _curve([v[0] for v in ordered], [v[1] for v in ordered], trials)


def synthetic_objective(params: dict, *, noise_seed: int) -> tuple[float, float]:
    """SYNTHETIC (A_T, A_B^N) for a point of the quick space: a made-up, smooth, noisy trade-off.

    Not raypriv training; chance levels 1/8 (action) and 1/13 (identity) as on SBU.
    """
    rng = random.Random(noise_seed)
    chance_t, chance_b = 1 / 8, 1 / 13

    def lr_quality(lr: float, best: float) -> float:
        return math.exp(-((math.log10(lr) - math.log10(best)) / 0.5) ** 2)

    lg = math.log2(params["gamma"])  # -2 .. 3
    zoo = {"smallcnn_sampled": 0.0, "smallcnn_widths": 0.15, "mixed": 0.35}.get(params.get("budget"), 0.0)
    strength = (0.45 * lg + 0.2 * (params["M"] - 1) + 0.25 * (params["restart_every"] > 0) + zoo
                - 0.8 * params["alpha"]) * (0.4 + 0.6 * lr_quality(params["lr_degrader"], 8e-4)) \
        * (0.6 + 0.4 * lr_quality(params["lr_budget"], 1e-3))
    privacy = chance_b + (1 - chance_b) / (1 + math.exp(-(1.2 - 1.6 * strength)))
    damage = 0.25 * max(lg, 0.0) ** 1.5 + 0.05 * (params["M"] - 1) - 0.1 * params["alpha"]
    target = chance_t + (0.9 - chance_t) * lr_quality(params["lr_target"], 1e-3) ** 0.5 / (1 + math.exp(damage - 1.5))
    clip = lambda x: min(1.0, max(0.0, x))  # noqa: E731
    return clip(target + rng.gauss(0, 0.02)), clip(privacy + rng.gauss(0, 0.02))
