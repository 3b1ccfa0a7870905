"""results/*.csv and what bench/tables.py renders from them: the rendered files are up to date,
every row carries its provenance, and a comparison group is summarised correctly."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
import record  # noqa: E402
import tables  # noqa: E402


def test_rendered_results_are_up_to_date(capsys):
    assert tables.main(["--check"]) == 0, capsys.readouterr().out


@pytest.mark.parametrize("kind", sorted(record.COLUMNS))
def test_every_current_row_names_its_provenance(kind):
    with open(REPO / "results" / f"{kind}.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        assert reader.fieldnames == record.COLUMNS[kind]
    assert rows
    for i, row in enumerate(rows, 2):
        assert None not in row, f"{kind}.csv line {i}: more cells than columns"
        if row["superseded"]:
            continue
        missing = [k for k in record.REQUIRED if not row[k]]
        assert not missing, f"{kind}.csv line {i}: no {missing}"
        assert len(row["date"]) == 10 and row["date"][4] == row["date"][7] == "-", row["date"]
        assert len(row["commit"]) >= 7 and all(c in "0123456789abcdef" for c in row["commit"]), row["commit"]


def _row(label, seed, fresh, privacy, group="g"):
    return {"label": label, "seed": str(seed), "target_acc_fresh_pct": str(fresh), "privacy_acc_pct": str(privacy),
            "group": group, "superseded": ""}


def test_a_group_is_summarised_per_arm_with_a_paired_interval():
    rows = [_row("game", 0, 80, 50), _row("game", 1, 70, 60), _row("game", 2, 75, 55),
            _row("no_game", 0, 82, 70), _row("no_game", 1, 74, 76), _row("no_game", 2, 78, 73),
            _row("game", 3, 99, 99, group=""), {**_row("no_game", 3, 0, 0), "superseded": "re-measured"}]
    (name, (game, no_game)), = tables.group_summaries(rows).items()
    assert name == "g" and (game.arm, no_game.arm) == ("game", "no_game")
    assert game.n == no_game.n == 3 and no_game.seeds == (0, 1, 2)
    assert game.mean["target_acc_fresh"] == pytest.approx(75.0) and game.std["target_acc_fresh"] == pytest.approx(5.0)
    assert no_game.mean["privacy_acc"] == pytest.approx(73.0) and no_game.std["privacy_acc"] == pytest.approx(3.0)
    # no_game - game per seed: fresh A_T +2, +4, +3; A_B^N +20, +16, +18 (std 2, n 3, t(0.975, 2) = 4.3027)
    mean, low, high = no_game.diff["privacy_acc"]
    half = 4.302653 * 2 / math.sqrt(3)
    assert (mean, low, high) == pytest.approx((18.0, 18.0 - half, 18.0 + half), abs=1e-4)
    assert no_game.diff["target_acc_fresh"][0] == pytest.approx(3.0)
    assert game.diff["privacy_acc"] == pytest.approx((0.0, 0.0, 0.0))
    assert "| no_game | 3 | 0, 1, 2 | 78.0 ± 4.0 % | 73.0 ± 3.0 % | +3.0 [+0.5, +5.5] | +18.0 [+13.0, +23.0] |" in \
        "\n".join(tables._groups_section([{**r, "command": "raypriv compare"} for r in rows]))


def test_a_comparison_is_recorded_one_row_per_finished_run(tmp_path):
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "runs.csv").write_text(
        "arm,seed,target_acc,target_acc_fresh,privacy_acc,status,worst_attacker,config_digest,"
        "attacker/a,attacker/b,seconds/total\n"
        "game,0,0.8,0.84,0.30,FINISHED,a,abc,0.30,0.10,2987.4\n"
        "game,1,nan,nan,nan,RUNNING,,abd,,,\n")
    rows = record.compare_rows(out, "raypriv compare sbu --synthetic --profile quick --arms game --seeds 0,1 --out cmp")
    assert len(rows) == 1
    row = rows[0]
    assert (row["label"], row["seed"], row["group"], row["profile"]) == ("game", "0", "cmp", "quick")
    assert (row["target_acc_fresh_pct"], row["privacy_acc_pct"]) == ("84.00", "30.00")
    assert (row["attackers"], row["wall_seconds"]) == (2, 2987)


def test_a_resumed_comparison_adds_only_its_new_runs_and_may_join_another_group(tmp_path, monkeypatch):
    monkeypatch.setattr(record, "MEASURED_AT", "HEAD")
    out = tmp_path / "m3"
    out.mkdir()
    header = "arm,seed,target_acc,target_acc_fresh,privacy_acc,status,worst_attacker,config_digest,seconds/total\n"
    (out / "runs.csv").write_text(header + "method3,0,0.8,0.7,0.5,FINISHED,a,d0,60\nmethod3,1,0.8,0.9,0.5,RUNNING,,d1,\n")
    first = "raypriv compare ucf101-vispr --synthetic --profile quick --arms method3 --seeds 0,1 --out m3"
    record.append("tradeoff", record.compare_rows(out, first), tmp_path)
    (out / "runs.csv").write_text(header + "method3,0,0.8,0.7,0.5,FINISHED,a,d0,60\nmethod3,1,0.8,0.9,0.6,FINISHED,a,d1,70\n")
    again = record.unrecorded(record.compare_rows(out, first + " --resume"), tmp_path)
    assert [(r["label"], r["seed"]) for r in again] == [("method3", "1")]
    record.append("tradeoff", again, tmp_path)
    other = tmp_path / "m2"
    other.mkdir()
    (other / "runs.csv").write_text(header + "method2,0,0.8,0.6,0.4,FINISHED,a,e0,50\nmethod2,1,0.8,0.8,0.4,FINISHED,a,e1,50\n")
    second = "raypriv compare ucf101-vispr --synthetic --profile quick --arms method2 --seeds 0,1 --out m2"
    joined = record.compare_rows(other, second, group="m3")
    assert record.unrecorded(joined, tmp_path) == joined and {r["group"] for r in joined} == {"m3"}
    record.append("tradeoff", joined, tmp_path)
    rows = tables.read("tradeoff", tmp_path)
    (name, (m3, m2)), = tables.group_summaries(rows).items()
    assert (name, m3.arm, m2.arm, m2.paired_seeds) == ("m3", "method3", "method2", (0, 1))
    # method2 - method3 per seed: privacy -10, -20 points
    assert m2.diff["privacy_acc"][0] == pytest.approx(-15.0)
    section = "\n".join(tables._groups_section(rows))
    assert f"`{first}`" in section and f"`{first} --resume`" in section and f"`{second}`" in section


def test_a_cross_dataset_comparison_names_cmap_and_stays_out_of_the_readme_block():
    rows = [{**_row(arm, seed, 70 + seed, 40 + seed, group="uv"), "command": "raypriv compare ucf101-vispr",
             "experiment": "ucf101-vispr", "profile": "quick"} for arm in ("game", "no_game") for seed in range(3)]
    section = "\n".join(tables._groups_section(rows))
    assert "| arm | n | seeds | fresh A_T | cMAP^N | Δ fresh A_T vs game | Δ cMAP^N vs game |" in section
    assert tables._latest_pair(rows) is None  # the README's table is SBU's
    sbu = [{**r, "group": "s", "experiment": "sbu"} for r in rows]
    assert tables._latest_pair(rows + sbu) == "s"


def test_the_second_setting_pairs_each_arm_and_baseline_with_the_game_and_matches_a_t():
    trade = [{**_row(arm, seed, fresh + seed, cmap - seed, group=group), "experiment": "ucf101-vispr", "profile": "quick"}
             for group, arm, fresh, cmap in (("old", "game", 10, 90), ("uv", "game", 80, 50), ("uv", "no_game", 85, 55),
                                             ("m3", "method3", 70, 45))
             for seed in range(3)]
    trade += [{**_row("game", 0, 99, 1, group="sbu-g"), "experiment": "sbu", "profile": "quick"}]
    base = [{"experiment": "ucf101-vispr", "profile": "quick", "seed": str(seed), "method": method,
             "target_acc_fresh_pct": str(fresh + seed), "privacy_acc_pct": str(cmap), "chance_privacy_pct": "33.90",
             "superseded": ""}
            for method, fresh, cmap in (("raw", 60, 85), ("downsample_s2", 78, 60), ("downsample_s4", 50, 40))
            for seed in range(3)]
    summaries = tables.cross_summaries(base, [*trade, {**trade[3], "superseded": "re-measured"}])
    assert [(a.arm, src) for a, src in summaries] == [
        ("game", "`uv`"), ("no_game", "`uv`"), ("method3", "`m3`"),  # the old group's game is not the latest
        ("raw", "`raypriv baselines`"), ("downsample_s2", "`raypriv baselines`"), ("downsample_s4", "`raypriv baselines`")]
    by = {a.arm: a for a, _ in summaries}
    assert by["game"].mean["target_acc_fresh"] == pytest.approx(81.0) and by["game"].n == 3
    assert by["method3"].diff["privacy_acc"][0] == pytest.approx(-5.0)  # paired by seed across groups
    assert by["downsample_s2"].diff["privacy_acc"][0] == pytest.approx(10.0 + 1.0)  # 60 vs 50, 49, 48
    section = "\n".join(tables._cross_section(base, trade))
    assert "`downsample_s2` comes closest to the game's fresh A_T (79.0 ± 1.0 % against 81.0 ± 1.0 %)" in section
    assert "cMAP chance (each attribute's test prevalence as its score): 33.9 %." in section
    other_cpu = [{**r, "machine": "another CPU"} if r["label"] == "method3" else r for r in trade]
    by = {a.arm: a for a, _ in tables.cross_summaries(base, other_cpu)}
    assert by["method3"].n == 3 and math.isnan(by["method3"].diff["privacy_acc"][0])  # a seed on another CPU is no pair


def test_a_baselines_folder_is_recorded_with_its_experiment_profile_and_seed(tmp_path):
    (tmp_path / "baselines.json").write_text(
        '[{"method": "raw", "target_acc_fresh": 0.55, "privacy_acc": 0.845, "chance_privacy": 0.339, '
        '"worst_attacker": "smallcnn_d3_w16", "privacy_per_attacker": {"a": 0.8, "b": 0.845}, "seconds": 611.6}]')
    (row,) = record.baseline_rows(tmp_path, "raypriv baselines ucf101-vispr --synthetic --profile quick --set seed=2 "
                                            "--out DIR")
    assert (row["experiment"], row["profile"], row["seed"], row["method"]) == ("ucf101-vispr", "quick", 2, "raw")
    assert (row["target_acc_fresh_pct"], row["privacy_acc_pct"], row["chance_privacy_pct"]) == ("55.00", "84.50", "33.90")
    assert (row["attackers"], row["wall_seconds"], row["evaluation_epochs"]) == (2, 612, 20)
    assert len(row["config_digest"]) == 12


def test_the_readme_block_reads_only_sbu_baselines(tmp_path):
    import shutil

    for kind in record.COLUMNS:
        shutil.copy(REPO / "results" / f"{kind}.csv", tmp_path)
    before = tables.render_readme_block(tmp_path)
    ucf_raw = {"date": "2026-12-07", "commit": "0" * 40, "machine": "m", "command": "raypriv baselines ucf101-vispr",
               "experiment": "ucf101-vispr", "profile": "quick", "seed": 0, "method": "raw",
               "target_acc_fresh_pct": "12.34", "privacy_acc_pct": "56.78"}
    record.append("baselines", [ucf_raw], tmp_path)
    after = tables.render_readme_block(tmp_path)
    assert after == before and "12.3 %" not in after  # its raw frames row stays SBU's
