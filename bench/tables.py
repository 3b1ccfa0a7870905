"""Render the measured results in `results/*.csv` as docs/RESULTS.md and as the README's results
table (between `<!-- results:begin -->` and `<!-- results:end -->`).

    python bench/tables.py            # rewrite both files
    python bench/tables.py --check    # exit 1, naming each stale file, when either differs

Rows with a `superseded` reason are not rendered. Trade-off rows that share a `group` (one
`raypriv compare`, recorded with `python bench/record.py compare`) are also summarised per label:
n, mean ± std of fresh A_T and A_B^N, and the paired difference to the group's first label with a
95 % t-interval (`raypriv.report.stats`, the functions `raypriv compare` uses). The output depends
on the CSVs alone, so rendering twice gives the same files.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path
from typing import Sequence

from raypriv.report.stats import ArmSummary, mean_std, summarise

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "results"
RESULTS_MD = REPO / "docs" / "RESULTS.md"
README = REPO / "README.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
# The README's rows: the learned f_d of the `quick` profile and its no-game control (labels in tradeoff.csv).
LEARNED = ("quick", "default")
CONTROL = ("quick", "no game")
OBJECTIVES = ("target_acc_fresh", "privacy_acc")
# The privacy column's name per experiment: identity accuracy on SBU, the attributes' cMAP on VISPR.
PRIVACY_NAME = {"ucf101-vispr": "cMAP^N"}
_GOAL = {"<=": "≤", ">=": "≥"}


def read(kind: str, results: Path = RESULTS) -> list[dict[str, str]]:
    with open(results / f"{kind}.csv", newline="") as f:
        return list(csv.DictReader(f))


def current(rows: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    return [r for r in rows if not r.get("superseded")]


def _num(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _pct(text: str, lower: str = "") -> str:
    if text in ("", None):
        return "–"
    return f"{'≥ ' if lower == 'yes' else ''}{_num(text):.1f} %"


def _pm(mean: float, std: float) -> str:
    if not math.isfinite(mean):
        return "–"
    return f"{mean:.1f} %" if not math.isfinite(std) else f"{mean:.1f} ± {std:.1f} %"


def _diff(d: tuple[float, float, float]) -> str:
    mean, low, high = d
    if not math.isfinite(mean):
        return "–"
    if not math.isfinite(low):
        return f"{mean:+.1f}"
    return f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]"


def _provenance(r: dict[str, str]) -> list[str]:
    return [r["date"], f"`{r['commit'][:7]}`", r["machine"], r["threads"] or "–"]


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _footnotes(rows: Sequence[dict[str, str]]) -> list[str]:
    return [f"{i}. `{r['command']}`" + (f" — {r['note']}" if r["note"] else "") for i, r in enumerate(rows, 1)]


def _cmd(command: str) -> str:
    return f"`python bench/record.py {command}`"


def _run(r: dict[str, str], arm: str) -> dict[str, object]:
    """A results row as `raypriv.report.stats.summarise` reads it: arm, seed, machine and the objectives in percent."""
    return {"arm": arm, "seed": int(r["seed"]), "machine": r.get("machine", ""),
            "target_acc_fresh": _num(r["target_acc_fresh_pct"]), "privacy_acc": _num(r["privacy_acc_pct"])}


# --- groups (raypriv compare) ----------------------------------------------------------------------

def _groups(rows: Sequence[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    """The current rows of each group, groups in order of first appearance."""
    groups: dict[str, list[dict[str, str]]] = {}
    for r in current(rows):
        if r.get("group"):
            groups.setdefault(r["group"], []).append(r)
    return groups


def _summarise_group(members: Sequence[dict[str, str]]) -> list[ArmSummary]:
    arms = list(dict.fromkeys(r["label"] for r in members))
    return summarise([_run(r, r["label"]) for r in members], arms, OBJECTIVES)


def group_summaries(rows: Sequence[dict[str, str]]) -> dict[str, list[ArmSummary]]:
    """Per group (in order of first appearance), per label: n, mean ± std and the paired difference
    (by seed) to the group's first label of fresh A_T and A_B^N, in percent."""
    return {name: _summarise_group(members) for name, members in _groups(rows).items()}


def _groups_section(rows: Sequence[dict[str, str]]) -> list[str]:
    lines = ["## Comparisons", "",
             "From `results/tradeoff.csv`, rows sharing a `group` (one `raypriv compare --out DIR`, recorded with "
             f"{_cmd('compare --compare-dir DIR --command ...')}). Mean ± sample std over seeds; Δ is the mean paired "
             "difference (same seed, same machine) to the group's first arm with its 95 % t-interval.", ""]
    groups = _groups(rows)
    if not groups:
        return lines + ["No comparison recorded yet.", ""]
    for name, members in groups.items():
        arms = _summarise_group(members)
        privacy = PRIVACY_NAME.get(members[0].get("experiment", ""), "A_B^N")
        lines += [f"### `{name}`", ""]
        for command in dict.fromkeys(r["command"] for r in members):  # a group may join several comparisons
            lines += [f"`{command}`", ""]
        lines += _table(
            ["arm", "n", "seeds", "fresh A_T", privacy, f"Δ fresh A_T vs {arms[0].arm}", f"Δ {privacy} vs {arms[0].arm}"],
            [[a.arm, a.n, ", ".join(map(str, a.seeds)), _pm(a.mean["target_acc_fresh"], a.std["target_acc_fresh"]),
              _pm(a.mean["privacy_acc"], a.std["privacy_acc"]),
              "–" if i == 0 else _diff(a.diff["target_acc_fresh"]), "–" if i == 0 else _diff(a.diff["privacy_acc"])]
             for i, a in enumerate(arms)]) + [""]
    return lines


# --- the second setting (UCF-101 + VISPR) ---------------------------------------------------------

CROSS = ("ucf101-vispr", "quick")


def cross_summaries(base: Sequence[dict[str, str]], trade: Sequence[dict[str, str]],
                    setting: tuple[str, str] = CROSS) -> list[tuple[ArmSummary, str]]:
    """Each f_d measured in `setting` (experiment, profile) with its source: every arm of its
    comparison groups (an arm in several groups: its latest group's rows), then every baseline
    method over its seeds; mean ± std, and the paired difference (same seed, same machine) to the `game` arm."""
    experiment, profile = setting
    latest: dict[str, str] = {}
    for r in current(trade):
        if r.get("group") and (r["experiment"], r["profile"]) == setting:
            latest[r["label"]] = r["group"]
    arms = [r for r in current(trade) if r.get("group") and r["group"] == latest.get(r["label"])
            and (r["experiment"], r["profile"]) == setting]
    methods = [r for r in current(base) if (r["experiment"], r["profile"]) == setting]
    runs = [_run(r, r["label"]) for r in arms]
    runs += [_run(r, r["method"]) for r in methods]
    names = sorted(latest, key=lambda a: a != "game") + list(dict.fromkeys(r["method"] for r in methods))
    sources = {**{a: f"`{g}`" for a, g in latest.items()}, **{r["method"]: "`raypriv baselines`" for r in methods}}
    return [(a, sources[a.arm]) for a in summarise(runs, names, OBJECTIVES)] if names else []


def _cross_section(base: Sequence[dict[str, str]], trade: Sequence[dict[str, str]]) -> list[str]:
    experiment, profile = CROSS
    summaries = cross_summaries(base, trade)
    lines = [f"## The second setting: {experiment}, `{profile}` profile", "",
             "The UCF-101 + VISPR stand-in (laptop preset): each learned f_d (the latest comparison group of its arm in "
             "`results/tradeoff.csv`) and each baseline of `results/baselines.csv` (raw, Method 1 downsampling) over its "
             "seeds; privacy is the best of the unseen attackers' cMAP on the image test split. On this profile the "
             "`game` arm is Method 2 (one budget model, never restarted), `method2` is that configuration under the paper's "
             "name (measured beside `method3` on one machine), and `method3` is Method 3 (4 budget models "
             "restarted every 10 iterations). Δ is the mean paired difference (same `seed`, the models' and "
             "attackers' draws, with the data drawn with `data.seed` 0 throughout; and the same machine, since another "
             "CPU's float paths read differently) to the first row, with its 95 % t-interval; `–` where no pair exists.",
             ""]
    if not summaries:
        return lines + ["Nothing recorded yet.", ""]
    chance = {_num(r["chance_privacy_pct"]) for r in current(base)
              if (r["experiment"], r["profile"]) == CROSS and r["chance_privacy_pct"]}
    ref = summaries[0][0].arm  # `game` when recorded
    lines += _table(["f_d", "n", "seeds", "fresh A_T", "cMAP^N", f"Δ fresh A_T vs {ref}", f"Δ cMAP^N vs {ref}", "source"],
                    [[a.arm, a.n, ", ".join(map(str, a.seeds)), _pm(a.mean["target_acc_fresh"], a.std["target_acc_fresh"]),
                      _pm(a.mean["privacy_acc"], a.std["privacy_acc"]),
                      "–" if i == 0 else _diff(a.diff["target_acc_fresh"]),
                      "–" if i == 0 else _diff(a.diff["privacy_acc"]), source] for i, (a, source) in enumerate(summaries)])
    lines += [""] + ([f"cMAP chance (each attribute's test prevalence as its score): {min(chance):.1f} %.", ""]
                     if len(chance) == 1 else [])
    game = next((a for a, _ in summaries if a.arm == "game"), None)
    down = [a for a, _ in summaries if a.arm.startswith("downsample_s")]
    if game is not None and down:
        near = min(down, key=lambda a: abs(a.mean["target_acc_fresh"] - game.mean["target_acc_fresh"]))
        lines += [f"Matched A_T: of the downsampling factors, `{near.arm}` comes closest to the game's fresh A_T "
                  f"({_pm(near.mean['target_acc_fresh'], near.std['target_acc_fresh'])} against "
                  f"{_pm(game.mean['target_acc_fresh'], game.std['target_acc_fresh'])}); its cMAP^N is "
                  f"{_pm(near.mean['privacy_acc'], near.std['privacy_acc'])} against the game's "
                  f"{_pm(game.mean['privacy_acc'], game.std['privacy_acc'])}.", ""]
    return lines


# --- docs/RESULTS.md -------------------------------------------------------------------------------

def render_results(results: Path = RESULTS) -> str:
    every_base = current(read("baselines", results))
    base = [r for r in every_base if r["experiment"] == "sbu"]
    down = current(read("downsampling", results))
    trade = read("tradeoff", results)
    runs = [r for r in current(trade) if not r.get("group")]
    bench = current(read("benchmarks", results))
    chance = {r["task"]: r["chance_pct"] for r in down}
    lines = [
        "# Results",
        "",
        "Generated by `python bench/tables.py` from `results/*.csv`; do not edit by hand. Each row of a CSV is one",
        "measured outcome with its date, commit, machine, torch threads, exact command and config digest;",
        "rows with a `superseded` reason stay in the CSV and are not shown here. Synthetic SBU, laptop preset",
        f"(12 frames of 48×48), held-out test split; chance is {_pct(chance.get('action', ''))} for the action and "
        f"{_pct(chance.get('identity', ''))} for the identity.",
        "A_T is the jointly trained f_T's action accuracy, fresh A_T a fresh f_T's, A_B^N the best of the N fresh",
        "attackers' identity accuracy; `≥` marks a lower bound (fewer attackers than the full evaluation).",
        "",
        "## Baselines",
        "",
        "From `results/baselines.csv`: the paper's baselines through the two-fold protocol "
        f"(`raypriv baselines`, recorded with {_cmd('baselines --dir DIR --command ...')}).",
        "",
    ]
    lines += _table(["#", "method", "fresh A_T", "A_B^N", "worst attacker", "attackers", "attacker epochs", "wall s",
                     "date", "commit", "machine", "threads"],
                    [[i, r["method"], _pct(r["target_acc_fresh_pct"]), _pct(r["privacy_acc_pct"], r["privacy_lower_bound"]),
                      f"`{r['worst_attacker']}`", r["attackers"], r["evaluation_epochs"], r["wall_seconds"] or "–",
                      *_provenance(r)] for i, r in enumerate(base, 1)])
    lines += ["", *_footnotes(base), ""]

    lines += ["## Downsampling (the paper's Table 1 property)", "",
              "From `results/downsampling.csv` (`python bench/downsampling.py`): one fresh model per cell, trained on the",
              "downsampled train split (each s×s block averaged, shown back at 48×48) and tested on the test split.", ""]
    factors = sorted({int(r["factor"]) for r in down})
    # One footnote per distinct provenance (a command measures several cells).
    sources = list(dict.fromkeys(tuple(r[k] for k in ("date", "commit", "machine", "threads", "command", "note"))
                                 for r in down))
    cells = {(int(r["factor"]), r["task"]): r for r in down}
    models = {task: next((r["model"] for r in down if r["task"] == task), "") for task in ("action", "identity")}

    def cell(s: int, task: str) -> str:
        r = cells.get((s, task))
        if r is None:
            return "–"
        ref = sources.index(tuple(r[k] for k in ("date", "commit", "machine", "threads", "command", "note"))) + 1
        return f"{_pct(r['test_acc_pct'])} [{ref}]"

    lines += _table(["s", "frame", f"action: `{models['action']}`", f"identity: `{models['identity']}`"],
                    [[s, f"{48 // s}×{48 // s}", cell(s, "action"), cell(s, "identity")] for s in factors])
    lines += ["", *(f"{i}. {date}, `{commit[:7]}`, {where}, torch threads {threads or '–'}: `{command}`"
                    + (f" — {note}" if note else "")
                    for i, (date, commit, where, threads, command, note) in enumerate(sources, 1)), ""]

    lines += ["## Trade-off runs", "",
              "From `results/tradeoff.csv`: one row per training (or evaluation) run; commands and notes below "
              f"(recorded with {_cmd('tradeoff --run-dir DIR --command ...')}).", ""]
    lines += _table(["#", "configuration", "seed", "A_T", "fresh A_T", "A_B^N", "worst attacker", "attackers", "wall s",
                     "date", "commit", "machine", "threads"],
                    [[i, f"{r['profile']}: {r['label']}", r["seed"], _pct(r["target_acc_pct"]), _pct(r["target_acc_fresh_pct"]),
                      _pct(r["privacy_acc_pct"], r["privacy_lower_bound"]), f"`{r['worst_attacker']}`" if r["worst_attacker"] else "–",
                      r["attackers"], r["wall_seconds"] or "–", *_provenance(r)] for i, r in enumerate(runs, 1)])
    lines += ["", *_footnotes(runs), ""]
    lines += _groups_section(trade)
    lines += _cross_section(every_base, trade)

    lines += ["## Benchmarks", "",
              "From `results/benchmarks.csv` (`python bench/run_all.py --json figures.json`, recorded with "
              f"{_cmd('benchmarks --json figures.json')}; bench/README.md describes each figure).", ""]
    lines += _table(["#", "figure", "value", "unit", "goal", "met", "date", "commit", "machine", "threads"],
                    [[i, f"`{r['name']}`", r["value"], r["unit"], f"{_GOAL.get(r['better'], r['better'])} {r['goal']}" if r["goal"] else "–",
                      r["met"] or "–", *_provenance(r)] for i, r in enumerate(bench, 1)])
    lines += ["", *_footnotes(bench)]
    return "\n".join(lines) + "\n"


# --- README.md -------------------------------------------------------------------------------------

def _summary(rows: Sequence[dict[str, str]], key: str) -> tuple[float, float]:
    return mean_std(_num(r[key]) for r in rows)


def _latest_pair(trade: Sequence[dict[str, str]]) -> str | None:
    """The last recorded SBU comparison group of the `quick` profile with both a `game` and a `no_game` arm."""
    groups = [g for g in dict.fromkeys(r["group"] for r in trade if r.get("group"))
              if {"game", "no_game"} <= {r["label"] for r in trade if r.get("group") == g and r["profile"] == "quick"
                                         and r.get("experiment", "sbu") == "sbu"}]
    return groups[-1] if groups else None


def render_readme_block(results: Path = RESULTS) -> str:
    """The README's one results table: raw frames, the downsampling factor whose action accuracy is
    closest to the learned f_d's, the learned `quick` f_d over its seeds, and its no-game control."""
    base = {r["method"]: r for r in current(read("baselines", results)) if r["experiment"] == "sbu"}
    down = current(read("downsampling", results))
    trade = current(read("tradeoff", results))
    pair = _latest_pair(trade)
    if pair:  # the latest `raypriv compare` of the quick profile's game and no_game arms
        learned = [r for r in trade if r.get("group") == pair and r["label"] == "game"]
        control = [r for r in trade if r.get("group") == pair and r["label"] == "no_game"]
    else:
        learned = [r for r in trade if (r["profile"], r["label"]) == LEARNED and not r.get("group")]
        control = [r for r in trade if (r["profile"], r["label"]) == CONTROL and not r.get("group")]
    chance = {r["task"]: r["chance_pct"] for r in down}
    rows = []
    if "raw" in base:
        r = base["raw"]
        rows.append(["raw frames", _pct(r["target_acc_fresh_pct"]), _pct(r["privacy_acc_pct"], r["privacy_lower_bound"]),
                     f"`{r['worst_attacker']}`", f"1 run, {r['attackers']} attackers"])
    fresh, fresh_std = _summary(learned, "target_acc_fresh_pct")
    actions = {int(r["factor"]): r for r in down if r["task"] == "action"}
    identities = {int(r["factor"]): r for r in down if r["task"] == "identity"}
    if learned and actions:
        s = min(sorted(actions), key=lambda f: abs(_num(actions[f]["test_acc_pct"]) - fresh))
        ident = identities.get(s)
        rows.append([f"downsampling s = {s}", _pct(actions[s]["test_acc_pct"]),
                     _pct(ident["test_acc_pct"], "yes") if ident else "–",
                     f"`{ident['model']}`" if ident else "–", "1 run, 1 attacker"])
    for name, members in (("learned f_d (`quick` profile)", learned), ("no game: f_d + f_T trained on the action only", control)):
        if not members:
            continue
        seeds = ", ".join(sorted({r["seed"] for r in members}, key=int))
        worst = sorted({r["worst_attacker"] for r in members})
        lower = any(r["privacy_lower_bound"] == "yes" for r in members)
        if len(members) == 1:
            r = members[0]
            attackers = f", {r['attackers']} attackers" if r["attackers"] else ""
            rows.append([name, _pct(r["target_acc_fresh_pct"]), _pct(r["privacy_acc_pct"], r["privacy_lower_bound"]),
                         f"`{r['worst_attacker']}`", f"1 run (seed {seeds}){attackers}"])
        else:
            rows.append([name, _pm(*_summary(members, "target_acc_fresh_pct")),
                         ("≥ " if lower else "") + _pm(*_summary(members, "privacy_acc_pct")),
                         " / ".join(f"`{w}`" for w in worst), f"{len(members)} runs (seeds {seeds}), mean ± std"])
    header = ["f_d", f"fresh A_T (action, chance {_pct(chance.get('action', ''))})",
              f"A_B^N (identity, chance {_pct(chance.get('identity', ''))})", "worst attacker", "measured"]
    paired = []
    if pair:
        runs = [_run(r, r["label"]) for r in learned + control]
        game = summarise(runs, ["no_game", "game"], OBJECTIVES)[1]
        seeds = [str(seed) for seed in game.paired_seeds]
        if len(seeds) >= 3:
            paired = [f"Game minus no game on the same seeds ({', '.join(seeds)}; `{pair}`): fresh A_T "
                      f"{_diff(game.diff['target_acc_fresh'])}, A_B^N {_diff(game.diff['privacy_acc'])} points "
                      "(95 % t-intervals).", ""]
        else:  # a trade-off claim needs >= 3 seeds beside the paired control
            paired = [f"`{pair}` is incomplete: the arms share {len(seeds)} seed(s) ({', '.join(seeds) or 'none'}), "
                      "fewer than the 3 a paired claim needs; no difference is claimed yet.", ""]
    return "\n".join([
        BEGIN, *_table(header, rows), "", *paired,
        "Synthetic SBU, laptop preset, held-out test split; `≥` marks a lower bound (fewer attackers). Rendered by",
        "`python bench/tables.py` from `results/*.csv`; every row's command, commit and machine are in",
        "[docs/RESULTS.md](docs/RESULTS.md).",
        END,
    ])


def with_block(readme: str, block: str) -> str:
    """`readme` with the text from BEGIN to END replaced by `block`."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{README.name}: no {BEGIN} ... {END} markers")
    return readme[:start] + block + readme[end + len(END):]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 when a rendered file is out of date")
    args = parser.parse_args(argv)
    wanted = {RESULTS_MD: render_results(), README: with_block(README.read_text(), render_readme_block())}
    stale = [path for path, text in wanted.items() if not path.exists() or path.read_text() != text]
    for path in stale:
        rel = path.relative_to(REPO)
        if args.check:
            print(f"stale: {rel} (run python bench/tables.py)")
        else:
            path.write_text(wanted[path])
            print(f"wrote {rel}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
