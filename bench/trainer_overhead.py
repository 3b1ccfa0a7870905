"""Trainer overhead: one adversarial iteration of THE loop ÷ the same updates in a bare PyTorch loop.

    python bench/run_all.py --only trainer_overhead [--tiny] [--iterations N] [--rounds R]

The numerator runs `raypriv.method.adversarial.train_adversarial` itself on the `quick` profile
(`--tiny`: `smoke`) with pre-training and restarts off, so every iteration is steady-state
Algorithm 1: the f_d + f_T step against the most confident budget model, the f_T validation
check (every `target_check_every` iterations), up to `target_max_steps` L_T steps and up to
`budget_max_steps` budget steps. Iteration times come from the loop's own `on_iteration`
callback; the first iteration (warm-up) is left out, so iterations 2..N hold whole check cycles.

The denominator replays exactly the updates the loop took in each of those iterations (its
history row: 1 adversarial step, `target_steps` L_T steps, `budget_steps` budget steps) as a
minimal hand-written loop over the same architectures (same registry names and sizes), the same
batch size and frames, and one batch already on the device as floats: forward, loss,
`zero_grad`, `backward`, `step`, nothing else. So the ratio charges the loop with everything
beyond those updates: batch assembly (indexing uint8 clips, frame selection, conversion), the
f_T validation check, the budget phase's accuracy-check forwards, `.item()` calls and Python
bookkeeping.

Each iteration's bare replay runs right after that iteration, inside the loop's `on_iteration`
callback and outside the loop's timing, so the two see the same machine load (other jobs on a
shared machine change the speed from minute to minute). The figure is the ratio of the summed
times over iterations 2..N (and `--rounds` repetitions); the median per-iteration ratio is
reported beside it. Where the time goes is measured two ways: the loop's phases, timed by
wrapping the loop module's own helpers (`accuracy`, `budget_phase`) while it runs, and one
extra, shorter run under `torch.profiler` for the operators with the most self CPU time.
"""

from __future__ import annotations

import contextlib
import time

import torch
import torch.nn.functional as F

from _common import SPACE, Figure, log

GOAL = 1.10


def measure(*, tiny: bool, iterations: int, rounds: int, profile: bool) -> dict[str, Figure]:
    from raypriv.method.config import load_run_config
    from raypriv.method.runtime import keep_freed_memory

    # THE loop sets this allocator option for its process; set it before either arm runs, so the bare
    # loop is timed under the same allocator whichever arm goes first.
    keep_freed_memory()
    profile_name = "smoke" if tiny else "quick"
    iterations = max(2, iterations)
    overrides = (f"iterations={iterations}", "restart_every=0", "pretrain.degrader_steps=0",
                 "pretrain.target_epochs=0", "pretrain.budget_epochs=0")
    cfg = load_run_config(SPACE, profile_name, overrides)
    data, num_actions, num_identities = _data(cfg)

    loop_times, bare_times, rows, phases, bare_phases, extra_check = [], [], [], {}, {}, 0.0
    for r in range(rounds):
        run = _run_paired(cfg, data, num_actions, num_identities)
        loop_times += run["loop"]
        bare_times += run["bare"]
        rows += run["rows"]
        extra_check += run["extra_check_s"]
        for mine, theirs in ((phases, run["phases"]), (bare_phases, run["bare_phases"])):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0.0) + v
        log(f"round {r + 1}: loop {sum(run['loop']) / len(run['loop']):.3f} s/iteration, bare "
            f"{sum(run['bare']) / len(run['bare']):.3f} s/iteration (iterations 2..{iterations})")
    n = len(loop_times)
    loop_s, bare_s = sum(loop_times), sum(bare_times)
    ratios = sorted(a / b for a, b in zip(loop_times, bare_times))
    steps = {k: sum(row[k] for row in rows) / n for k in ("target_steps", "budget_steps")}
    per_it = {k: v / n for k, v in phases.items()}
    per_it["rest: f_d+f_T step, L_T steps, batch assembly"] = loop_s / n - sum(per_it.values())
    details = {
        "profile": profile_name, "overrides": list(overrides), "iterations_timed": n, "rounds": rounds,
        "loop_s_per_iteration": loop_s / n, "bare_s_per_iteration": bare_s / n,
        "median_iteration_ratio": ratios[n // 2],
        "updates_per_iteration": {"adversarial": 1, **steps},
        "loop_phases_s_per_iteration": per_it,
        "bare_phases_s_per_iteration": {k: v / n for k, v in bare_phases.items()},
        "budget_check_forward_s_per_iteration": extra_check / n,
        "models": {"degrader": cfg.models.degrader, "target": cfg.models.target,
                   "budgets": run["budget_names"]},
        "batch_size": cfg.adversarial.batch_size, "budget_frames": cfg.adversarial.budget_frames,
        "target_check_every": cfg.adversarial.target_check_every, "threads": torch.get_num_threads(),
    }
    log(f"loop {loop_s / n:.3f} s/iteration vs bare {bare_s / n:.3f} s/iteration over {n} paired iterations "
        f"(median per-iteration ratio {ratios[n // 2]:.2f}); updates per iteration: 1 adversarial, "
        f"{steps['target_steps']:.1f} L_T, {steps['budget_steps']:.1f} budget")
    log("  loop phases (s/iteration): " + ", ".join(f"{k} {v:.3f}" for k, v in per_it.items()))
    log("  bare phases (s/iteration): " + ", ".join(f"{k} {v / n:.3f}" for k, v in bare_phases.items()))
    log(f"  one budget accuracy-check forward (f_d + M budgets, what the loop's budget phase adds to its "
        f"steps): {extra_check / n:.3f} s")
    if profile:
        details["top_ops"] = _profile_ops(cfg, data, num_actions, num_identities)
    return {"trainer_overhead": Figure(
        value=loop_s / bare_s, goal=GOAL, unit="x (loop iteration / bare updates)", better="<=",
        command=f"python bench/run_all.py --only trainer_overhead{' --tiny' if tiny else ''}", tiny=tiny,
        details=details,
        note=f"{profile_name} profile, {loop_s / n:.3f} vs {bare_s / n:.3f} s per iteration; loop's val check "
             f"{per_it.get('f_T validation check', 0):.3f} s, budget phase {per_it.get('budget phase', 0):.3f} s "
             f"(bare {bare_phases.get('budget', 0) / n:.3f} s)",
    )}


def _data(cfg):
    """The train and val splits the loop reads (uint8), built as `raypriv.method.run.load_splits` builds them."""
    from raypriv.method.data import build_dataset, split_tensors

    data = {}
    start = time.perf_counter()
    for split in ("train", "val"):
        ds = build_dataset(cfg.data.dataset, split, synthetic=True, preset=cfg.data.preset, seed=cfg.data.seed)
        data[split] = split_tensors(ds)
    log(f"data: preset {cfg.data.preset}, train {len(data['train'][0])} / val {len(data['val'][0])} clips "
        f"({time.perf_counter() - start:.1f} s)")
    return data, ds.num_actions, ds.num_identities


@contextlib.contextmanager
def _timed_helpers(phases: dict[str, float]):
    """Time the loop's own helpers by wrapping the names the loop module calls (restored afterwards)."""
    import raypriv.method.adversarial as loop

    originals = {"accuracy": loop.accuracy, "budget_phase": loop.budget_phase}
    labels = {"accuracy": "f_T validation check", "budget_phase": "budget phase"}

    def wrap(name):
        fn = originals[name]

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                phases[labels[name]] = phases.get(labels[name], 0.0) + time.perf_counter() - start

        return timed

    try:
        for name in originals:
            setattr(loop, name, wrap(name))
        yield
    finally:
        for name, fn in originals.items():
            setattr(loop, name, fn)


def _run_paired(cfg, data, num_actions, num_identities) -> dict:
    """THE loop, with the bare replay of each iteration's updates run right after it (in the loop's
    `on_iteration` callback, outside the loop's timing), so both see the same machine load.

    Returns per-iteration seconds of iterations 2..N for both, the loop's history rows and phase
    times for those iterations, and the bare loop's phase times.
    """
    from raypriv.method.adversarial import train_adversarial

    bare = _BareLoop(cfg, data, num_actions, num_identities)
    loop_times: list[float] = []
    bare_times: list[float] = []
    rows: list[dict] = []
    phases: dict[str, float] = {}
    snapshot: dict[str, float] = {}
    resumed = [0.0]  # when the loop's current iteration started

    def on_iteration(row):
        now = time.perf_counter()
        if row["iteration"] == 1:  # warm-up for both; the loop's phase times count from iteration 2
            snapshot.update(phases)
            bare.replay(row)
            bare.phases = {k: 0.0 for k in bare.phases}
            bare.extra_check_s = 0.0
        else:
            loop_times.append(now - resumed[0])
            rows.append(row)
            bare_times.append(bare.replay(row))
        resumed[0] = time.perf_counter()

    with _timed_helpers(phases):
        trained = train_adversarial(cfg, data, num_actions=num_actions, num_identities=num_identities,
                                    device=torch.device("cpu"), on_iteration=on_iteration)
    return {"loop": loop_times, "bare": bare_times, "rows": rows, "budget_names": list(trained.budget_names),
            "phases": {k: v - snapshot.get(k, 0.0) for k, v in phases.items()}, "bare_phases": dict(bare.phases),
            "extra_check_s": bare.extra_check_s}


class _BareLoop:
    """A minimal hand-written loop over the same architectures (built from the same registry names
    and sizes as the loop's), one fixed batch already as floats: forward, loss, zero_grad,
    backward, step."""

    def __init__(self, cfg, data, num_actions: int, num_identities: int) -> None:
        from raypriv.method.models import budget_model_names as select_budget_models
        from raypriv.method.models import create_model

        self.adv = adv = cfg.adversarial
        self.degrader = create_model("degrader", cfg.models.degrader)
        channels = self.degrader.out_channels
        self.target = create_model("target", cfg.models.target, num_classes=num_actions, in_channels=channels)
        self.budgets = [create_model("budget", name, num_classes=num_identities, in_channels=channels)
                        for name in select_budget_models(cfg.budget)]
        clips, actions, identities = data["train"]
        b = min(adv.batch_size, len(clips))
        self.x = clips[:b].float().div(255)
        self.x_budget = self.x[:, :, : adv.budget_frames] if adv.budget_frames else self.x
        self.y_action, self.y_identity = actions[:b], identities[:b]
        self.reference = self.x if channels == self.x.shape[1] else self.x.mean(1, keepdim=True)
        self.opt_d = torch.optim.Adam(self.degrader.parameters(), lr=adv.lr_degrader)
        self.opt_t = torch.optim.Adam(self.target.parameters(), lr=adv.lr_target)
        self.opt_b = [torch.optim.Adam(m.parameters(), lr=adv.lr_budget) for m in self.budgets]
        self.phases = {"adversarial": 0.0, "target": 0.0, "budget": 0.0}
        # Not part of the bare loop's time: what the loop's budget phase computes beyond its steps
        # (one more f_d + M budget forwards to check accuracy), measured so the report can size it.
        self.extra_check_s = 0.0

    def replay(self, row: dict) -> float:
        """The updates of one loop iteration (its history row); returns their wall time."""
        total = 0.0
        for phase, fn, count in (("adversarial", self.adversarial_step, 1),
                                 ("target", self.target_step, int(row["target_steps"])),
                                 ("budget", self.budget_step, int(row["budget_steps"]))):
            start = time.perf_counter()
            for _ in range(count):
                fn()
            seconds = time.perf_counter() - start
            self.phases[phase] += seconds
            total += seconds
        start = time.perf_counter()
        self.budget_check_forward()
        self.extra_check_s += time.perf_counter() - start
        return total

    def budget_check_forward(self) -> float:
        """The budget phase's accuracy check without a step: f_d (no grad) + M budget forwards with
        autograd on (the loop builds the graph it would step on, then returns)."""
        self.degrader.eval()
        for m in self.budgets:
            m.train()
        with torch.no_grad():
            degraded = self.degrader(self.x_budget)
        logits = [m(degraded) for m in self.budgets]
        return min((lg.argmax(1) == self.y_identity).float().mean().item() for lg in logits)

    def adversarial_step(self) -> None:
        adv, x = self.adv, self.x
        self.degrader.train(), self.target.train()
        for m in self.budgets:
            m.eval().requires_grad_(False)
        degraded = self.degrader(x)
        seen = degraded[:, :, : adv.budget_frames] if adv.budget_frames else degraded
        per_model = []
        for m in self.budgets:
            log_p = F.log_softmax(m(seen), dim=-1)
            per_model.append((log_p.exp() * log_p).sum(-1).mean())
        loss = (F.cross_entropy(self.target(degraded), self.y_action) + adv.gamma * torch.stack(per_model).max()
                + adv.alpha * F.l1_loss(degraded, self.reference.expand_as(degraded)))
        self.opt_d.zero_grad(set_to_none=True), self.opt_t.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step(), self.opt_t.step()
        for m in self.budgets:
            m.requires_grad_(True)

    def target_step(self) -> None:
        self.degrader.train(), self.target.train()
        loss = F.cross_entropy(self.target(self.degrader(self.x)), self.y_action)
        self.opt_d.zero_grad(set_to_none=True), self.opt_t.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step(), self.opt_t.step()

    def budget_step(self) -> None:
        self.degrader.eval()
        for m in self.budgets:
            m.train()
        with torch.no_grad():
            degraded = self.degrader(self.x_budget)
        loss = sum(F.cross_entropy(m(degraded), self.y_identity) for m in self.budgets)
        for opt in self.opt_b:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in self.opt_b:
            opt.step()


def _profile_ops(cfg, data, num_actions, num_identities, top: int = 10) -> list[dict]:
    """One more run of the loop under torch.profiler: the operators with the most self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    from raypriv.method.adversarial import train_adversarial

    cfg = cfg.model_copy(update={"adversarial": cfg.adversarial.model_copy(
        update={"iterations": min(cfg.adversarial.iterations, 6)})})
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_adversarial(cfg, data, num_actions=num_actions, num_identities=num_identities, device=torch.device("cpu"))
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    ranked = sorted(events, key=lambda e: -e.self_cpu_time_total)
    rows = [{"op": e.key, "self_s": e.self_cpu_time_total / 1e6, "share": e.self_cpu_time_total / total,
             "calls": e.count} for e in ranked[:top]]
    for name in ("aten::item", "aten::_local_scalar_dense", "aten::index", "aten::copy_", "aten::div_"):
        found = [e for e in events if e.key == name]
        if found and name not in {r["op"] for r in rows}:
            e = found[0]
            rows.append({"op": e.key, "self_s": e.self_cpu_time_total / 1e6, "share": e.self_cpu_time_total / total,
                         "calls": e.count})
    log(f"torch.profiler, one run of {cfg.adversarial.iterations} iterations (self CPU time, {total / 1e6:.1f} s total):")
    for r in rows:
        log(f"  {r['op']:40s} {r['self_s']:7.2f} s  {100 * r['share']:5.1f} %  {r['calls']:6d} calls")
    return rows
