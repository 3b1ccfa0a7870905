"""Run raypriv's benchmarks and write their figures (issue 7).

    python bench/run_all.py --json OUT.json [--tiny] [--only NAME ...]

Figures (each a ratio or a time measured in this one run; absolute times are printed too):

  trainer_overhead          one adversarial iteration of THE loop / the same steps in a bare PyTorch loop  (<= 1.10)
  trial_overhead            (trial wall time - trainer time) / trial wall time, quick sweep trials         (<= 0.10)
  concurrency_speedup       trials per hour at 2 concurrent trials / at 1, on this machine                 (>= 1.7)
  scaling_speedup           one trial's wall time with 1 Ray Train worker / with 2 data-parallel workers   (>= 1.4)
  device_cost_ratio         f_T FLOPs / f_d FLOPs per clip, full profile at 16x112x112                     (>= 45)
  search_efficiency_trials  trials MO-TPE needs to reach random search's K-trial hypervolume                (<= K/2)
  tradeoff_hv_ratio         hypervolume of the quick sweep's front / of the downsampling baselines' front  (>= 1.3)
  time_to_front_s           wall time of `raypriv sweep sbu --synthetic --profile quick`                    (<= 1200 s)

`--tiny` runs every benchmark at a size that takes seconds to a couple of minutes (the `smoke`
profile; search efficiency on a labelled synthetic objective): the test suite uses it so the
scripts cannot rot; its numbers say nothing about raypriv's performance. Without `--tiny`, the
sweep benchmarks run the `quick` profile and take hours on a 2-core CPU. Progress and the
commands run go to stderr; the table goes to stdout. bench/README.md describes each benchmark.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from _common import BenchError, Figure, Workspace, log

NAMES = ("trainer_overhead", "trial_overhead", "concurrency_speedup", "scaling_speedup", "device_cost_ratio",
         "search_efficiency_trials", "tradeoff_hv_ratio", "time_to_front_s")


def _measure(name: str, args: argparse.Namespace, ws: Workspace) -> dict[str, Figure]:
    if name == "trainer_overhead":
        import trainer_overhead

        return trainer_overhead.measure(tiny=args.tiny, iterations=args.iterations, rounds=args.rounds,
                                        profile=not args.no_profile)
    if name == "device_cost_ratio":
        import device_cost

        return device_cost.measure(tiny=args.tiny, repeats=args.repeats)
    if name == "search_efficiency_trials":
        import search_efficiency

        return search_efficiency.measure(ws, tiny=args.tiny, trials=args.search_trials, seeds=args.search_seeds,
                                         objective=args.search_objective, profile=args.search_profile)
    import sweep_figures

    return getattr(sweep_figures, name)(ws, tiny=args.tiny, concurrency_trials=args.concurrency_trials)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None, help="write {name: {value, goal, unit, met, ...}} here")
    parser.add_argument("--tiny", action="store_true", help="smallest sizes (smoke profile): a smoke test, not a measurement")
    parser.add_argument("--only", nargs="+", choices=NAMES, metavar="NAME", help=f"a subset of: {', '.join(NAMES)}")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the in-process benchmarks (default 1)")
    parser.add_argument("--workdir", type=Path, default=None, help="homes of the CLI runs (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the CLI runs' homes (MLflow, Optuna, reports, logs)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per CLI command before it is stopped (default 900 with --tiny, else 6 h)")
    size = parser.add_argument_group("sizes")
    size.add_argument("--iterations", type=int, default=None, help="trainer_overhead: adversarial iterations per round")
    size.add_argument("--rounds", type=int, default=None, help="trainer_overhead: alternating rounds of loop and bare loop")
    size.add_argument("--no-profile", action="store_true", help="trainer_overhead: skip the profiler runs")
    size.add_argument("--repeats", type=int, default=None, help="device_cost_ratio: latency repeats per model")
    size.add_argument("--concurrency-trials", type=int, default=None,
                      help="concurrency_speedup: trials per arm (default: the quick profile's 8; not with --tiny)")
    size.add_argument("--search-trials", type=int, default=None, help="search_efficiency_trials: K (default 32)")
    size.add_argument("--search-seeds", type=int, default=3, help="search_efficiency_trials: seeds per sampler")
    size.add_argument("--search-objective", choices=("real", "synthetic"), default=None,
                      help="search_efficiency_trials: real sweeps (default) or the labelled synthetic objective "
                           "(default with --tiny)")
    size.add_argument("--search-profile", choices=("smoke", "quick"), default=None,
                      help="search_efficiency_trials: profile of the real sweeps (default quick; smoke with --tiny)")
    args = parser.parse_args(argv)
    _defaults(args)
    torch.set_num_threads(args.threads)

    names = args.only or list(NAMES)
    figures: dict[str, Figure] = {}
    failures: dict[str, str] = {}
    seconds: dict[str, float] = {}
    ws = Workspace(args.workdir, args.keep, args.timeout, args.threads)
    try:
        for name in names:
            if name in figures:
                continue
            log(f"== {name}{' (tiny)' if args.tiny else ''}")
            start = time.perf_counter()
            try:
                figures.update(_measure(name, args, ws))
            except BenchError as err:
                failures[name] = str(err)
                log(f"!! {name} failed: {err}")
            seconds[name] = time.perf_counter() - start
    finally:
        ws.close()

    machine = _machine()
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    out = {}
    for name in names:
        if name in figures:
            out[name] = {**figures[name].as_dict(), "benchmark_seconds": round(seconds[name], 1),
                         "machine": machine, "date": date}
    print(_table(figures, names, failures, seconds))
    print(f"\nmachine: {machine}; date {date}; torch threads {args.threads}" + ("; TINY sizes" if args.tiny else ""))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2, allow_nan=False) + "\n")
        print(f"figures -> {args.json}")
    return 1 if failures else 0


def _defaults(args: argparse.Namespace) -> None:
    tiny = args.tiny
    args.timeout = args.timeout or (900.0 if tiny else 6 * 3600.0)
    args.iterations = args.iterations or (4 if tiny else 11)
    args.rounds = args.rounds or 1
    args.repeats = args.repeats or (2 if tiny else 5)
    args.search_trials = args.search_trials or 32
    args.search_objective = args.search_objective or ("synthetic" if tiny else "real")
    args.search_profile = args.search_profile or ("smoke" if tiny else "quick")


def _machine() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return f"{os.cpu_count()} CPUs ({cpu}){gpu}"


def _fmt(x: float | None, unit: str) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.0f}" if unit.startswith("s") and abs(x) >= 100 else f"{x:.3g}"


def _table(figures: dict[str, Figure], names: list[str], failures: dict[str, str], seconds: dict[str, float]) -> str:
    lines = [f"| {'figure':24s} | {'measured':>9s} | {'goal':>9s} | met | {'unit':34s} | size | bench s |",
             f"|{'-' * 26}|{'-' * 11}|{'-' * 11}|-----|{'-' * 36}|------|---------|"]
    for name in names:
        if name in failures:
            lines.append(f"| {name:24s} | {'FAILED':>9s} | {'':>9s} |     | {failures[name].splitlines()[0][:34]:34s} | "
                         f"     | {seconds[name]:7.0f} |")
            continue
        f = figures[name]
        goal = f"{f.better} {_fmt(f.goal, f.unit)}"
        lines.append(f"| {name:24s} | {_fmt(f.value, f.unit):>9s} | {goal:>9s} | {'yes' if f.met else 'no ':3s} | "
                     f"{f.unit[:34]:34s} | {'tiny' if f.tiny else 'full'} | {seconds[name]:7.0f} |")
    notes = [f"- {name}: {figures[name].note}" for name in names if name in figures and figures[name].note]
    return "\n".join(lines + ([""] + notes if notes else []))


if __name__ == "__main__":
    sys.exit(main())
