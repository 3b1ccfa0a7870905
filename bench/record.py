"""Append measured outcomes to `results/*.csv`, with their provenance filled in.

    python bench/record.py tradeoff --run-dir DIR --command "raypriv train ..." [--label L] [--group G]
    python bench/record.py compare --compare-dir DIR --command "raypriv compare ..." [--group G]
    python bench/record.py baselines --dir DIR --command "raypriv baselines ..."
    python bench/record.py benchmarks --json figures.json
    python bench/record.py --commit REV ...   (the run measured another revision than HEAD)

Each row gets the date (UTC, today), the commit (`git rev-parse HEAD`), the machine (CPU model and
cores from /proc/cpuinfo, memory, GPUs through torch.cuda), torch's thread count (`--threads` when
the measured run used another) and the config digest of the run config it measured
(`config_digest`). Accuracies are stored in percent. Then `python bench/tables.py` renders
docs/RESULTS.md and the README's table from the CSVs.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "results"

PROVENANCE = ["date", "commit", "machine", "threads", "command", "config_digest"]
TRAILER = ["superseded", "note"]
COLUMNS = {
    "baselines": PROVENANCE + ["experiment", "profile", "seed", "method", "target_acc_fresh_pct", "privacy_acc_pct",
                               "privacy_lower_bound", "chance_privacy_pct", "worst_attacker", "attackers",
                               "evaluation_epochs", "wall_seconds"] + TRAILER,
    "downsampling": PROVENANCE + ["factor", "task", "model", "test_acc_pct", "chance_pct"] + TRAILER,
    "tradeoff": PROVENANCE + ["experiment", "profile", "label", "seed", "overrides", "group", "target_acc_pct",
                              "target_acc_fresh_pct", "privacy_acc_pct", "privacy_lower_bound", "worst_attacker",
                              "attackers", "wall_seconds"] + TRAILER,
    "benchmarks": PROVENANCE + ["name", "value", "unit", "better", "goal", "met"] + TRAILER,
}
# What every row that is not superseded must carry.
REQUIRED = ("date", "commit", "machine", "command")
RUN_COMMANDS = ("train", "evaluate", "baselines", "sweep", "compare")
_FLAGS = {"--synthetic", "--resume", "--resume-if-exists", "--sweep-trial"}  # options that take no value


# --- provenance ------------------------------------------------------------------------------------

def config_digest(cfg: Any) -> str:
    """First 12 hex digits of sha256 over the resolved run config: the digest sweeps and comparisons tag runs with."""
    from raypriv.sweep.plan import config_digest as digest

    return digest(cfg)


def parse_command(command: str) -> dict[str, Any] | None:
    """The run options of a `raypriv` command line: subcommand, experiment, profile, config, sets,
    sweep_trial; None when it is not a raypriv run command (e.g. a bench script)."""
    tokens = shlex.split(command)
    try:
        start = tokens.index("raypriv") + 1
    except ValueError:
        return None
    if start >= len(tokens) or tokens[start] not in RUN_COMMANDS:
        return None
    out: dict[str, Any] = {"subcommand": tokens[start], "experiment": None, "profile": "quick", "config": None,
                           "sets": [], "sweep_trial": False}
    valued = {"--profile": "profile", "--config": "config", "--set": "sets"}
    i = start + 1
    while i < len(tokens):
        token = tokens[i]
        name, eq, inline = token.partition("=")
        if name in valued:
            value = inline if eq else (tokens[i + 1] if i + 1 < len(tokens) else "")
            i += 1 if eq else 2
            if valued[name] == "sets":
                out["sets"].append(value)
            else:
                out[valued[name]] = value
            continue
        if token == "--sweep-trial":
            out["sweep_trial"] = True
        elif token.startswith("-"):
            # Any other option; skip its value unless it is a flag or the next token is an option.
            if not eq and i + 1 < len(tokens) and not tokens[i + 1].startswith("-") and token not in _FLAGS:
                i += 1
        elif out["experiment"] is None:
            out["experiment"] = token
        i += 1
    return out


def command_config(command: str) -> Any:
    """The run config of a `raypriv` run command, resolved as the CLI resolves it; None for other
    commands and for `raypriv compare` (one config per arm x seed: its runs.csv gives their digests)."""
    parsed = parse_command(command)
    if parsed is None or parsed["experiment"] is None or parsed["subcommand"] == "compare":
        return None
    from raypriv.method.run import resolve_run_config

    path = parsed["config"] or REPO / "search_spaces" / f"{parsed['experiment']}.yaml"
    return resolve_run_config(path, parsed["profile"], tuple(parsed["sets"]), sweep_trial=parsed["sweep_trial"])


def command_digest(command: str) -> str:
    cfg = command_config(command)
    return "" if cfg is None else config_digest(cfg)


def yaml_digest(path: Path) -> str:
    """The config digest of a run folder's `config.yaml` (the resolved config the run wrote)."""
    import yaml

    from raypriv.method.config import parse_run_config

    return config_digest(parse_run_config(yaml.safe_load(path.read_text()), str(path)))


def machine() -> str:
    """e.g. '2 CPU Intel(R) Xeon(R) Processor, 23 GiB, no GPU' or '16 CPU ..., 1x NVIDIA H100 80GB HBM3'."""
    model, memory = "CPU", ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
        kib = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
        memory = f", {round(kib / 2**20)} GiB"
    except (OSError, StopIteration):
        pass
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    gpu = f", {gpus}x {torch.cuda.get_device_name(0)}" if gpus else ", no GPU"
    return f"{os.cpu_count()} CPU {model}{memory}{gpu}"


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


MEASURED_AT = "HEAD"  # --commit: the revision the measured run ran, when HEAD has moved on since


def commit() -> tuple[str, str]:
    """(the measured revision's hash, a note when it is HEAD and the working tree has uncommitted changes)."""
    head = subprocess.run(["git", "rev-parse", "--verify", f"{MEASURED_AT}^{{commit}}"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout
    if MEASURED_AT != "HEAD":
        return head.strip(), ""
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.strip()
    return head.strip(), "uncommitted changes in the working tree" if dirty else ""


def provenance(command: str, threads: int | None, date: str | None = None, where: str | None = None) -> dict[str, Any]:
    head, dirty = commit()
    return {"date": date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"), "commit": head,
            "machine": where or machine(), "threads": torch_threads() if threads is None else threads,
            "command": command, "note": dirty}


# --- rows ------------------------------------------------------------------------------------------

def append(kind: str, rows: Iterable[dict[str, Any]], results: Path = RESULTS) -> Path:
    """Append `rows` to results/<kind>.csv (written with its header if new); unknown keys are errors."""
    columns = COLUMNS[kind]
    path = results / f"{kind}.csv"
    rows = list(rows)
    for row in rows:
        unknown = sorted(set(row) - set(columns))
        if unknown:
            raise ValueError(f"{kind}: unknown columns {unknown}; columns: {', '.join(columns)}")
    new = not path.exists()
    if not new:
        with open(path, newline="") as f:
            header = next(csv.reader(f), [])
        if header != columns:
            raise ValueError(f"{path}: its header differs from record.COLUMNS[{kind!r}]; update one to match the other")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerows({k: _cell(row.get(k, "")) for k in columns} for row in rows)
    return path


def pct(fraction: Any) -> str:
    """A fraction in [0, 1] as percent with two decimals; '' when missing."""
    if fraction in (None, ""):
        return ""
    return f"{100 * float(fraction):.2f}"


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return value


def _run_options(command: str) -> dict[str, Any]:
    parsed = parse_command(command) or {}
    return {"experiment": parsed.get("experiment") or "", "profile": parsed.get("profile") or "",
            "overrides": "; ".join(parsed.get("sets", []))}


def tradeoff_row(run_dir: Path, command: str, label: str | None, group: str = "",
                 threads: int | None = None) -> dict[str, Any]:
    """One training (or evaluation) run from its folder's metrics.json and config.yaml."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = run_dir / "config.yaml"
    seconds = metrics.get("seconds")
    import yaml

    seed = yaml.safe_load(config.read_text()).get("seed", "") if config.exists() else ""
    return {**provenance(command, threads), **_run_options(command),
            "config_digest": yaml_digest(config) if config.exists() else command_digest(command),
            "label": label or run_dir.name, "seed": seed, "group": group,
            "target_acc_pct": pct(metrics.get("target_acc")), "target_acc_fresh_pct": pct(metrics.get("target_acc_fresh")),
            "privacy_acc_pct": pct(metrics.get("privacy_acc")), "worst_attacker": metrics.get("worst_attacker", ""),
            "attackers": len(metrics.get("privacy_per_attacker") or {}) or "",
            "wall_seconds": round(seconds["total"] if isinstance(seconds, dict) else seconds or 0) or ""}


def _rounded(text: str) -> int | str:
    return round(float(text)) if text not in ("", "nan") else ""


def compare_rows(compare_dir: Path, command: str, threads: int | None = None, group: str | None = None) -> list[dict[str, Any]]:
    """One trade-off row per finished arm x seed of a `raypriv compare` folder's runs.csv (fractions),
    grouped under `group` (default: the folder's name)."""
    with open(compare_dir / "runs.csv", newline="") as f:
        runs = list(csv.DictReader(f))
    base = {**provenance(command, threads), **_run_options(command), "group": group or compare_dir.name}
    return [{**base, "label": run["arm"], "seed": run.get("seed", ""), "config_digest": run.get("config_digest", ""),
             "target_acc_pct": pct(run.get("target_acc")), "target_acc_fresh_pct": pct(run.get("target_acc_fresh")),
             "privacy_acc_pct": pct(run.get("privacy_acc")), "worst_attacker": run.get("worst_attacker", ""),
             "attackers": run.get("attackers") or sum(1 for k, v in run.items() if k.startswith("attacker/") and v != ""),
             "wall_seconds": run.get("wall_seconds") or _rounded(run.get("seconds/total", ""))}
            for run in runs if run.get("status", "FINISHED") == "FINISHED"]  # a failed or unfinished run has no figures


def unrecorded(rows: list[dict[str, Any]], results: Path = RESULTS) -> list[dict[str, Any]]:
    """The rows of a comparison that results/tradeoff.csv lacks: a resumed comparison's folder lists its
    earlier runs too, and a run is one row (same group, arm, seed, machine and config digest)."""
    path = results / "tradeoff.csv"
    if not path.exists():
        return rows
    with open(path, newline="") as f:
        seen = {_run_key(r) for r in csv.DictReader(f) if not r.get("superseded")}
    return [r for r in rows if _run_key(r) not in seen]


def _run_key(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(row.get(k, "")) for k in ("group", "label", "seed", "machine", "config_digest"))


def baseline_rows(out_dir: Path, command: str, threads: int | None = None) -> list[dict[str, Any]]:
    """One row per method of a `raypriv baselines` folder's baselines.json."""
    methods = json.loads((out_dir / "baselines.json").read_text())
    cfg = command_config(command)
    digest, epochs, seed = ("", "", "") if cfg is None else (config_digest(cfg), cfg.evaluation.epochs, cfg.seed)
    options = _run_options(command)
    base = {**provenance(command, threads), "config_digest": digest, "evaluation_epochs": epochs, "seed": seed,
            "experiment": options["experiment"], "profile": options["profile"]}
    return [{**base, "method": m["method"], "target_acc_fresh_pct": pct(m["target_acc_fresh"]),
             "privacy_acc_pct": pct(m["privacy_acc"]), "chance_privacy_pct": pct(m.get("chance_privacy")),
             "worst_attacker": m["worst_attacker"],
             "attackers": len(m.get("privacy_per_attacker") or {}) or "", "wall_seconds": round(m.get("seconds") or 0) or ""}
            for m in methods]


def benchmark_rows(figures_json: Path, threads: int | None = None) -> list[dict[str, Any]]:
    """One row per figure of `bench/run_all.py --json` output; tiny figures are refused (not measurements)."""
    figures = json.loads(figures_json.read_text())
    tiny = [name for name, f in figures.items() if f.get("tiny")]
    if tiny:
        raise SystemExit(f"{figures_json}: {', '.join(tiny)} ran at --tiny size: smoke tests, not measurements")
    rows = []
    for name, f in figures.items():
        row = provenance(f.get("command", ""), 1 if threads is None else threads, f.get("date"), f.get("machine"))
        rows.append({**row, "name": name, "value": f.get("value"), "unit": f.get("unit", ""), "better": f.get("better", ""),
                     "goal": f.get("goal"), "met": f.get("met"),
                     "note": "; ".join(n for n in (f.get("note", ""), row["note"]) if n)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the CSVs (default: results/)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of the measured run (default: this process's; 1 for benchmarks)")
    parser.add_argument("--commit", default="HEAD", help="the revision the measured run ran (default: HEAD)")
    sub = parser.add_subparsers(dest="kind", required=True)
    p = sub.add_parser("tradeoff", help="one run folder (raypriv train --out DIR)")
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--command", required=True, help="the exact command that produced the folder")
    p.add_argument("--label", default=None, help="configuration label (default: the folder's name)")
    p.add_argument("--group", default="", help="rows of one group are summarised per label in docs/RESULTS.md")
    p = sub.add_parser("compare", help="a raypriv compare --out DIR folder (its runs.csv)")
    p.add_argument("--compare-dir", type=Path, required=True)
    p.add_argument("--command", required=True)
    p.add_argument("--group", default=None, help="the group its rows join (default: the folder's name); another "
                   "comparison's group when both measured arms of one question on one machine")
    p = sub.add_parser("baselines", help="a raypriv baselines --out DIR folder (its baselines.json)")
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--command", required=True)
    p = sub.add_parser("benchmarks", help="the JSON of python bench/run_all.py --json")
    p.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    global MEASURED_AT
    MEASURED_AT = args.commit

    if args.kind == "tradeoff":
        rows = [tradeoff_row(args.run_dir, args.command, args.label, args.group, args.threads)]
        kind = "tradeoff"
    elif args.kind == "compare":
        rows, kind = compare_rows(args.compare_dir, args.command, args.threads, args.group), "tradeoff"
        listed, rows = len(rows), unrecorded(rows, args.results)
        if listed > len(rows):
            print(f"{listed - len(rows)} run(s) of {args.compare_dir} already recorded: left out", file=sys.stderr)
    elif args.kind == "baselines":
        rows, kind = baseline_rows(args.dir, args.command, args.threads), "baselines"
    else:
        rows, kind = benchmark_rows(args.json, args.threads), "benchmarks"
    path = append(kind, rows, args.results)
    print(f"{len(rows)} row(s) -> {path}; now run: python bench/tables.py", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
