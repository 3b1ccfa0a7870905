"""Pareto selection (A_T up, A_B^N down) and hypervolume on hand-made tables, and the report files.
Pure numpy and matplotlib: no Ray, no MLflow."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from raypriv.method.config import load_run_config
from raypriv.report.pareto import hypervolume, hypervolume_history, pareto_mask
from raypriv.report.front import Baseline, TrialRecord, build_report, format_front, front_mask

NAN = math.nan


@pytest.mark.parametrize("points, front", [
    # (A_T, A_B^N) -> on the front?
    ([(0.8, 0.3)], [True]),
    ([(0.8, 0.3), (0.7, 0.4)], [True, False]),  # dominated on both axes
    ([(0.8, 0.3), (0.6, 0.1), (0.9, 0.6)], [True, True, True]),  # a trade-off curve
    ([(0.8, 0.3), (0.8, 0.3)], [True, True]),  # exact ties: neither dominates the other
    ([(0.8, 0.3), (0.7, 0.5), (0.7, 0.5)], [True, False, False]),  # dominated duplicates stay dominated
    ([(0.8, 0.3), (0.8, 0.4)], [True, False]),  # same A_T, worse privacy
    ([(0.8, 0.3), (0.7, 0.3)], [True, False]),  # same privacy, worse A_T
    ([(0.8, 0.3), (NAN, 0.0), (0.99, NAN)], [True, False, False]),  # NaN never on the front, dominates nothing
    ([], []),
])
def test_pareto_mask_on_hand_made_tables(points, front):
    target = [p[0] for p in points]
    privacy = [p[1] for p in points]
    assert pareto_mask(target, privacy).tolist() == front


def test_pareto_mask_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="equal length"):
        pareto_mask([0.1, 0.2], [0.1])


def test_hypervolume_is_the_dominated_area_to_the_reference():
    assert hypervolume([0.8], [0.3]) == pytest.approx(0.8 * 0.7)
    # Two front points: [0.1, 0.3) x 0.6 + [0.3, 1] x 0.8; a dominated point adds nothing.
    assert hypervolume([0.6, 0.8, 0.5], [0.1, 0.3, 0.5]) == pytest.approx(0.2 * 0.6 + 0.7 * 0.8)
    assert hypervolume([0.8, 0.8], [0.3, 0.3]) == pytest.approx(0.8 * 0.7)  # ties count once
    assert hypervolume([], []) == 0.0
    history = hypervolume_history([0.5, 0.4, 0.8, 0.6], [0.5, 0.6, 0.3, 0.1])
    assert np.all(np.diff(history) >= 0) and history[-1] == pytest.approx(hypervolume([0.5, 0.4, 0.8, 0.6], [0.5, 0.6, 0.3, 0.1]))


def _record(number, target, privacy, status="FINISHED", full=True, **params):
    return TrialRecord(run_id=f"run{number}", trial=f"trial_{number:04d}", number=number, status=status,
                       full_budget=full, target_acc=target, target_acc_fresh=target, privacy_acc=privacy,
                       params={k: str(v) for k, v in params.items()})


def test_only_complete_full_budget_trials_count():
    records = [
        _record(0, 0.70, 0.40),
        _record(1, 0.95, 0.05, full=False),  # stopped early: would dominate everything
        _record(2, 0.90, 0.10, status="FAILED"),
        _record(3, NAN, NAN, status="RUNNING"),
        _record(4, 0.60, 0.20),
        _record(5, 0.50, 0.50),
    ]
    assert front_mask(records).tolist() == [True, False, False, False, True, False]


def test_a_cmap_sweep_report_names_its_privacy_score_cmap(tmp_path):
    records = [_record(0, 0.70, 0.40, gamma=1.0), _record(1, 0.60, 0.20, gamma=4.0)]
    report = build_report(records, tmp_path, sweep="ucf101-vispr-smoke-x", privacy="cMAP^N")
    assert format_front(report, ["gamma"]).splitlines()[0].split() == ["trial", "A_T", "A_T", "fresh", "cMAP^N", "gamma"]
    page = (tmp_path / "pareto.html").read_text()
    assert "trial_0001: A_T 60.0 %, cMAP^N 20.0 %" in page and "A_B^N" not in page


def test_build_report_writes_every_file_with_the_front_flagged(tmp_path):
    records = [_record(0, 0.70, 0.40, gamma=1.0), _record(1, 0.60, 0.20, gamma=4.0), _record(2, 0.50, 0.50, gamma=0.5),
               _record(3, NAN, NAN, status="FAILED", gamma=8.0)]
    run = load_run_config("search_spaces/sbu.yaml", "smoke").model_dump(mode="json")
    report = build_report(records, tmp_path, sweep="sbu-smoke-x", configs={"run0": run, "run1": run},
                          experiment="sbu", profile="smoke", data_args="--synthetic",
                          baselines=[Baseline("raw", 0.8, 0.9), Baseline("downsample_s8", 0.3, 0.8)],
                          chance=(1 / 8, 1 / 13))
    assert [r.trial for r in report.front] == ["trial_0001", "trial_0000"]  # most private first
    rows = list(csv.DictReader(open(tmp_path / "pareto.csv")))
    assert [(r["trial"], r["on_front"]) for r in rows] == [
        ("trial_0000", "true"), ("trial_0001", "true"), ("trial_0002", "false"), ("trial_0003", "false")]
    assert rows[1]["gamma"] == "4.0" and rows[3]["target_acc"] == ""
    hv = list(csv.DictReader(open(tmp_path / "hypervolume.csv")))
    assert [int(r["number"]) for r in hv] == [0, 1, 2]
    assert float(hv[-1]["hypervolume"]) == pytest.approx(hypervolume([0.7, 0.6, 0.5], [0.4, 0.2, 0.5]))
    assert (tmp_path / "pareto.png").stat().st_size > 10_000
    page = (tmp_path / "pareto.html").read_text()
    assert "trial_0001: A_T 60.0 %, A_B^N 20.0 %; gamma=4.0" in page and "downsample_s8" in page
    # Each front trial's config is a search-space YAML `raypriv train` reads; its header is the command.
    front_yaml = tmp_path / "front" / "trial_0001.yaml"
    assert front_yaml.read_text().startswith(
        "# raypriv train sbu --synthetic --profile smoke --config trial_0001.yaml --out runs/sbu-smoke-x/trial_0001")
    assert load_run_config(front_yaml, "smoke").model_dump(mode="json") == run
    assert {p.name for p in report.files} >= {"pareto.csv", "pareto.png", "pareto.html", "hypervolume.csv", "trial_0001.yaml"}
    table = format_front(report, ["gamma"])
    assert table.splitlines()[0].split() == ["trial", "A_T", "A_T", "fresh", "A_B^N", "gamma"]
    assert "trial_0001  60.0 %" in table
