"""A sweep's confirmation stage in numbers: which screening configurations are confirmed
(non-dominated sorting, crowding distance, ties), the knee, and the confirmed front on means with
its rank agreement, overlaps and report files. Pure numpy, scipy and matplotlib: no Ray, no MLflow."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from raypriv.method.config import load_run_config
from raypriv.report.confirmed import Replicated, confirm, format_confirmed
from raypriv.report.front import TrialRecord, build_report, front_markdown
from raypriv.report.pareto import crowding_distance, knee_index, nondominated_ranks, select_best
from raypriv.report.stats import summarise

SBU = "search_spaces/sbu.yaml"
NAN = math.nan


def _split(points):
    return [p[0] for p in points], [p[1] for p in points]


@pytest.mark.parametrize("points, ranks", [
    ([(0.8, 0.3), (0.7, 0.4), (0.6, 0.5)], [0, 1, 2]),  # a chain: each dominates the next
    ([(0.8, 0.3), (0.6, 0.1), (0.7, 0.4), (0.5, 0.6)], [0, 0, 1, 2]),
    ([(0.8, 0.3), (0.8, 0.3), (0.7, 0.4)], [0, 0, 1]),  # exact ties share a rank
    ([(0.8, 0.3), (NAN, 0.1), (0.9, NAN)], [0, 3, 3]),  # NaN after every valid point
    ([], []),
])
def test_non_dominated_sorting_peels_fronts(points, ranks):
    assert nondominated_ranks(*_split(points)).tolist() == ranks


def test_crowding_distance_keeps_the_ends_and_measures_the_gaps():
    # A front of four points along A_T up / A_B^N up: ends infinite; inner points sum the normalised gaps.
    target, privacy = [0.2, 0.4, 0.5, 0.8], [0.1, 0.2, 0.6, 0.9]
    d = crowding_distance(target, privacy)
    assert np.isinf(d[0]) and np.isinf(d[3])
    assert d[1] == pytest.approx((0.5 - 0.2) / 0.6 + (0.6 - 0.1) / 0.8)
    assert d[2] == pytest.approx((0.8 - 0.4) / 0.6 + (0.9 - 0.2) / 0.8)
    assert np.isinf(crowding_distance([0.5, 0.6], [0.1, 0.2])).all()  # two points: both ends
    assert crowding_distance([0.5, 0.5, 0.5], [0.1, 0.2, 0.3])[1] == pytest.approx(1.0)  # flat A_T adds nothing


@pytest.mark.parametrize("points, k, chosen", [
    # The front first (rank 0), then rank 1, whatever the order given.
    ([(0.5, 0.5), (0.8, 0.3), (0.6, 0.1)], 2, [1, 2]),
    # Within the front, the ends (infinite crowding) first, then the point beside the widest gap
    # (#2, whose neighbours are #1 and #3), before #1, crowded by #2.
    ([(0.2, 0.1), (0.4, 0.2), (0.41, 0.21), (0.8, 0.9)], 3, [0, 3, 2]),
    ([(0.2, 0.1), (0.4, 0.2), (0.41, 0.21), (0.8, 0.9)], 2, [0, 3]),
    # A duplicate of an earlier point comes after every distinct point of its rank: the earlier trial
    # is chosen, then a different configuration.
    ([(0.8, 0.3), (0.8, 0.3), (0.6, 0.1)], 2, [0, 2]),
    ([(0.5, 0.5), (0.5, 0.5), (0.5, 0.5)], 2, [0, 1]),
    # Fewer valid points than k: all of them, NaN never.
    ([(0.8, 0.3), (NAN, 0.1)], 3, [0]),
])
def test_the_k_best_by_rank_then_crowding_then_trial(points, k, chosen):
    assert select_best(*_split(points), k) == chosen


def test_the_knee_is_nearest_the_ideal_corner_after_scaling():
    # Scaled: (0, 0) -> dist 1, (0.9 A_T, 0.2 privacy) balanced, (1, 1) -> dist 1.
    assert knee_index([0.2, 0.7, 0.8], [0.1, 0.3, 0.9]) == 1
    assert knee_index([0.5], [0.4]) == 0
    assert knee_index([0.5, 0.5], [0.4, 0.2]) == 1  # flat A_T: the lower A_B^N
    assert knee_index([NAN], [0.1]) is None


def _record(number, target, privacy, status="FINISHED", **params):
    return TrialRecord(run_id=f"run{number}", trial=f"trial_{number:04d}", number=number, status=status,
                       full_budget=True, target_acc=target, target_acc_fresh=target, privacy_acc=privacy,
                       params={k: str(v) for k, v in params.items()})


def _group(name, stage, runs, **params):
    """A group from (seed, A_T, A_B^N) runs."""
    rows = [{"arm": name, "seed": s, "target_acc": t, "target_acc_fresh": t, "privacy_acc": p} for s, t, p in runs]
    (summary,) = summarise(rows, [name])
    return Replicated(stage, summary, tuple(f"{name}-s{s}" for s, _, _ in runs), {k: str(v) for k, v in params.items()})


GROUPS = [
    _group("trial_0001", "confirm", [(0, 0.70, 0.40), (1, 0.74, 0.44)], gamma=1.0),   # mean 0.72 / 0.42
    _group("trial_0002", "confirm", [(0, 0.60, 0.20), (1, 0.62, 0.22)], gamma=4.0),   # mean 0.61 / 0.21
    _group("trial_0000", "confirm", [(0, 0.55, 0.30), (1, 0.57, 0.34)], gamma=0.5),   # dominated by trial_0002
    _group("trial_0004", "confirm", [(0, 0.69, 0.37), (1, 0.71, 0.43)], gamma=2.0),   # 0.70 / 0.40: overlaps 0001
    _group("no_game", "control", [(0, 0.80, 0.60), (1, 0.78, 0.62)]),
    _group("raw", "baseline", [(0, 0.85, 0.99), (1, 0.87, 0.97)]),
]
SCREEN = {"trial_0000": {"target_acc": 0.50, "privacy_acc": 0.25}, "trial_0001": {"target_acc": 0.65, "privacy_acc": 0.30},
          "trial_0002": {"target_acc": 0.60, "privacy_acc": 0.10}, "trial_0004": {"target_acc": 0.62, "privacy_acc": 0.35}}


def test_the_confirmed_front_is_on_means_with_rank_agreement_and_overlaps():
    c = confirm(GROUPS, SCREEN)
    assert c.on_front == {"trial_0001": True, "trial_0002": True, "trial_0000": False, "trial_0004": True}
    assert [g.name for g in c.front] == ["trial_0002", "trial_0004", "trial_0001"]  # most private first
    assert [g.name for g in c.groups] == ["trial_0000", "trial_0001", "trial_0002", "trial_0004", "no_game", "raw"]
    # A_T: screening order 0001 > 0004 > 0002 > 0000, confirmed 0001 > 0004 > 0002 > 0000: τ = 1.
    assert c.rank_agreement["target_acc"] == pytest.approx(1.0)
    # A_B^N: screening 0002 < 0000 < 0001 < 0004, confirmed 0002 < 0000 < 0004 < 0001: one of 6 pairs swapped.
    assert c.rank_agreement["privacy_acc"] == pytest.approx(4 / 6)
    reversed_screen = {k: {"target_acc": -v["target_acc"], "privacy_acc": v["privacy_acc"]} for k, v in SCREEN.items()}
    assert confirm(GROUPS, reversed_screen).rank_agreement["target_acc"] == pytest.approx(-1.0)
    assert math.isnan(confirm(GROUPS[:1], SCREEN).rank_agreement["target_acc"])  # one configuration: undefined
    assert c.overlaps["trial_0001"] == ("trial_0004",) and c.overlaps["trial_0004"] == ("trial_0001",)
    assert c.overlaps["trial_0002"] == ()
    # Scaled over the front: 0002 (A_T 0, A_B^N 0), 0004 (0.82, 0.90), 0001 (1, 1): 0004 is nearest (1, 0).
    assert c.knee == "trial_0004"
    text = format_confirmed(c)
    assert "trial_0004  front, knee  0 1    70.0 ± 1.4 %" in text
    assert "τ over 4 configurations): A_T +1.00, A_B^N +0.67" in text
    assert "Error bars overlap: trial_0001 and trial_0004" in text


def test_the_report_files_carry_the_confirmation(tmp_path):
    records = [_record(0, 0.50, 0.25, gamma=0.5), _record(1, 0.65, 0.30, gamma=1.0), _record(2, 0.60, 0.10, gamma=4.0),
               _record(3, NAN, NAN, status="FAILED", gamma=8.0), _record(4, 0.62, 0.35, gamma=2.0)]
    run = load_run_config(SBU, "smoke").model_dump(mode="json")
    report = build_report(records, tmp_path, sweep="sbu-smoke-x", configs={"trial_0002-s0": run},
                          profile="smoke", confirmed=GROUPS, chance=(1 / 8, 1 / 13))
    rows = list(csv.DictReader(open(tmp_path / "pareto.csv")))
    assert [(r["trial"], r["stage"]) for r in rows] == [
        ("trial_0000", "screen"), ("trial_0001", "screen"), ("trial_0002", "screen"), ("trial_0003", "screen"),
        ("trial_0004", "screen"), ("trial_0000", "confirm"), ("trial_0001", "confirm"), ("trial_0002", "confirm"),
        ("trial_0004", "confirm"), ("no_game", "control"), ("raw", "baseline")]
    screen, confirmed = rows[2], rows[7]
    assert screen["privacy_acc_mean"] == "0.1000" and screen["privacy_acc_std"] == "" and screen["seeds"] == ""
    assert confirmed["seeds"] == "0 1" and confirmed["number"] == "2" and confirmed["on_front"] == "true"
    assert confirmed["privacy_acc_mean"] == "0.2100" and float(confirmed["privacy_acc_std"]) == pytest.approx(0.0141, abs=1e-4)
    assert confirmed["run_id"] == "trial_0002-s0 trial_0002-s1" and confirmed["gamma"] == "4.0"
    assert rows[6]["overlaps"] == "trial_0004" and rows[5]["on_front"] == "false" and rows[9]["on_front"] == "false"
    # The front's configs: the confirmed front's first replicate (only the one whose config was given).
    assert [p.name for p in (tmp_path / "front").iterdir()] == ["trial_0002.yaml"]
    assert "Confirmed front configuration trial_0002" in (tmp_path / "front" / "trial_0002.yaml").read_text()
    assert set(report.figures) == {"pareto.png", "pareto.html"} and (tmp_path / "pareto.png").stat().st_size > 10_000
    page = (tmp_path / "pareto.html").read_text()
    assert "trial_0002 (front), seeds 0 1: A_T 61.0 \\u00b1 1.4 %" in page and "no_game (control)" in page
    note = front_markdown(report, lambda run: f"#/runs/{run}")
    assert note.startswith("**Confirmed front** of sweep `sbu-smoke-x`: the best 4 of 4 screening trials")
    assert "| trial_0002 | front | 61.0 ± 1.4 % | 21.0 ± 1.4 % | 4 | [s0](#/runs/trial_0002-s0) [s1](#/runs/trial_0002-s1)" \
           " · screening [trial_0002](#/runs/run2) |" in note
    assert "| raw | baseline |" in note and "Kendall τ over 4 configurations" in note
