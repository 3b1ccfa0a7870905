"""`raypriv compare` end to end on a real local Ray and sqlite MLflow (smoke profile, 2 arms x 2
seeds): its child runs, files and summary, and a second start refused; and its pure parts (config
resolution, the summary's statistics, the privacy column's name)."""

from __future__ import annotations

import csv
import math

import pytest

from raypriv.method.config import ConfigError
from raypriv.report.confirmed import privacy_name
from raypriv.report.stats import paired_difference, summarise
from raypriv.sweep.compare import summary_markdown
from raypriv.sweep.config import load_compare_config
from sweep_helpers import run_raypriv

SBU = "search_spaces/sbu.yaml"


def test_arms_are_merged_over_the_profile_and_set_after_the_overrides():
    cfg = load_compare_config(SBU, "quick", ("game", "no_game", "method3"), (0, 3), ("iterations=30", "gamma=2"))
    runs = {(r.arm, r.seed): r.run for r in cfg.runs}
    assert list(runs) == [("game", 0), ("game", 3), ("no_game", 0), ("no_game", 3), ("method3", 0), ("method3", 3)]
    assert runs["game", 3].seed == 3 and runs["game", 3].adversarial.gamma == 2.0
    assert runs["game", 0].adversarial.iterations == 30  # --set changes what every arm starts from ...
    assert runs["no_game", 0].adversarial.iterations == 0  # ... never what an arm is
    assert runs["method3", 0].budget.count == 4 and runs["method3", 0].adversarial.restart_every > 0
    assert runs["game", 0].data.preset == "laptop"  # the full protocol: the profile's trial: fidelity is not applied
    with pytest.raises(ConfigError, match=r"unknown arm\(s\) \['gaem'\]; declared arms: game, no_game"):
        load_compare_config(SBU, "quick", ("gaem",), (0,))
    with pytest.raises(ConfigError, match="distinct"):
        load_compare_config(SBU, "quick", ("game",), (0, 0))


def test_the_ucf101_vispr_quick_game_is_method2_as_docs_results_says():
    cfg = load_compare_config("search_spaces/ucf101-vispr.yaml", "quick", ("game", "method2", "method3"), (0,))
    runs = {r.arm: r.run for r in cfg.runs}
    assert runs["game"] == runs["method2"]  # docs/RESULTS.md reads the game's rows as Method 2's
    assert (runs["method3"].budget.count, runs["method3"].adversarial.restart_every) == (4, 10)


def test_the_summary_pairs_each_arm_with_the_first_on_common_seeds():
    rows = [{"arm": "game", "seed": s, "target_acc": t, "target_acc_fresh": t, "privacy_acc": p}
            for s, t, p in [(0, 0.8, 0.4), (1, 0.7, 0.5), (2, 0.9, 0.45)]]
    rows += [{"arm": "no_game", "seed": s, "target_acc": t, "target_acc_fresh": t, "privacy_acc": p}
             for s, t, p in [(0, 0.82, 0.6), (1, 0.71, 0.62)]]
    game, no_game = summarise(rows, ["game", "no_game"])
    assert game.n == 3 and game.mean["privacy_acc"] == pytest.approx(0.45)
    assert game.std["privacy_acc"] == pytest.approx(0.05)
    assert game.diff["privacy_acc"][0] == 0.0
    # no_game - game on seeds 0 and 1: +0.20 and +0.12; t(0.975, 1) = 12.706, sd 0.0566, se 0.04
    mean, low, high = no_game.diff["privacy_acc"]
    assert mean == pytest.approx(0.16) and low == pytest.approx(0.16 - 12.706 * 0.04, abs=1e-3)
    assert high == pytest.approx(0.16 + 12.706 * 0.04, abs=1e-3)
    assert all(math.isnan(v) for v in paired_difference([0.5], [0.4])[1:])  # one pair: no interval


def test_runs_on_other_machines_are_not_paired():
    def row(arm, seed, machine, privacy):
        return {"arm": arm, "seed": seed, "machine": machine, "target_acc": 0.8, "target_acc_fresh": 0.8,
                "privacy_acc": privacy}
    rows = [row("game", 0, "xeon", 0.40), row("game", 1, "xeon", 0.50),
            row("method3", 0, "epyc", 0.60), row("method3", 1, "xeon", 0.70)]
    game, method3 = summarise(rows, ["game", "method3"])
    assert (method3.n, method3.seeds) == (2, (0, 1)) and method3.mean["privacy_acc"] == pytest.approx(0.65)
    assert method3.diff["privacy_acc"][0] == pytest.approx(0.20)  # seed 1 only: seed 0 ran on another CPU
    assert (game.paired_seeds, method3.paired_seeds) == ((0, 1), (1,))
    assert math.isnan(method3.diff["privacy_acc"][1])  # one pair: no interval
    (alone,) = summarise([row("method3", 0, "epyc", 0.6)], ["method3"])
    assert alone.seeds == (0,)
    (cross,) = summarise(rows[:1] + rows[2:3], ["game", "method3"])[1:]
    assert all(math.isnan(v) for v in cross.diff["privacy_acc"])  # no common (seed, machine): no difference


def test_the_privacy_column_is_named_for_what_the_runs_measured():
    rows = [{"arm": "game", "seed": s, "target_acc": 0.8, "target_acc_fresh": 0.8, "privacy_acc": 0.4} for s in (0, 1)]
    assert privacy_name(rows) == "A_B^N"
    assert privacy_name([{**r, "privacy_cmap": 0.4} for r in rows]) == "cMAP^N"  # ucf101-vispr's attribute cMAP
    table = summary_markdown(summarise(rows, ["game"]), "cMAP^N")
    assert table.startswith("| arm | n | fresh A_T | cMAP^N | fresh A_T − game (95 %) | cMAP^N − game (95 %) |")
    assert "A_B^N" not in table


def _children(home):
    from raypriv.sweep import tracking as store

    client = store.client(store.locations(home).tracking_uri)
    experiment = client.get_experiment_by_name("sbu")
    parents = client.search_runs([experiment.experiment_id], f"tags.`{store.TAG_ROLE}` = 'compare'")
    children = store.child_runs(client, experiment.experiment_id, parents[0].info.run_id) if parents else []
    return client, experiment, parents, children


@pytest.mark.slow
def test_compare_end_to_end_logs_every_arm_and_seed_and_is_not_run_twice(tmp_path):
    """`raypriv compare` runs its fixed trials through the same `prepare` + `tune_fixed` as a sweep's
    confirmation stage, whose kill and --resume mid-stage test_sweep_cli.py checks end to end."""
    from raypriv.sweep import tracking as store

    home, out = tmp_path / "home", tmp_path / "out"
    args = ("compare", "sbu", "--synthetic", "--profile", "smoke", "--arms", "game,no_game", "--seeds", "0,1",
            "--concurrency", "2", "--out", str(out))
    done = run_raypriv(*args, home=home, timeout=600)
    assert done.returncode == 0, done.stdout[-8000:]
    assert "| arm | n | fresh A_T | A_B^N |" in done.stdout
    client, experiment, parents, children = _children(home)
    assert experiment.tags.get("mlflow.experimentKind") == "custom_model_development"
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(c.info.run_name for c in children) == ["game_s0", "game_s1", "no_game_s0", "no_game_s1"]
    for child in children:
        tags = child.data.tags
        assert child.info.status == "FINISHED"
        assert (tags[store.TAG_ARM], tags[store.TAG_SEED]) == (child.info.run_name[:-3], child.info.run_name[-1])
        assert tags[store.TAG_STAGE] == "compare" and tags[store.TAG_WORKERS] == "1" and len(tags[store.TAG_DIGEST]) == 12
    with open(out / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["arm"], r["seed"]) for r in rows] == [("game", "0"), ("game", "1"), ("no_game", "0"), ("no_game", "1")]
    assert list(rows[0])[:5] == ["arm", "seed", "target_acc", "target_acc_fresh", "privacy_acc"]
    assert "attacker/plaincnn_d3_w32" in rows[0] and all(0 <= float(r["privacy_acc"]) <= 1 for r in rows)
    with open(out / "summary.csv", newline="") as f:
        summary = list(csv.DictReader(f))
    assert [(s["arm"], s["n"]) for s in summary] == [("game", "2"), ("no_game", "2")]
    assert "privacy_acc_diff_low" in summary[0] and (out / "compare.png").stat().st_size > 0
    note = parents[0].data.tags["mlflow.note.content"]
    assert note.startswith("| arm | n | fresh A_T") and "| no_game | 2 |" in note

    # The same comparison again is refused before anything starts; --resume would continue it.
    again = run_raypriv(*args, home=home, timeout=120)
    assert again.returncode != 0 and "already exists" in again.stdout and "--resume" in again.stdout
    assert len(_children(home)[3]) == 4
