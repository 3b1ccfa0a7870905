"""The benchmarks (`bench/run_all.py`) in tiny mode, so they cannot rot.

Only that each benchmark runs and writes its figure with a finite value is checked: benchmarks
measure, tests never assert on timings. The in-process benchmarks (trainer overhead, device cost,
search efficiency on its labelled synthetic objective) take about 20 s; the ones that drive real
`raypriv sweep` / `raypriv baselines` runs on a local Ray are marked slow (about 2.5 minutes on 2 cores).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
KEYS = {"value", "goal", "unit", "met", "better", "tiny", "command", "details", "note"}
# A sweep started by the benchmark must use a local Ray and scratch stores, whatever this shell points at.
_ENV_DROP = ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "RAYPRIV_HOME", "RAYPRIV_OPTUNA_STORAGE", "RAYPRIV_RAY_STORAGE")


def _run_all(tmp_path: Path, names: list[str], timeout: int) -> dict:
    out = tmp_path / "figures.json"
    env = {k: v for k, v in os.environ.items() if k not in _ENV_DROP}
    env["RAY_AUTH_MODE"] = "disabled"
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run_all.py"), "--tiny", "--json", str(out),
         "--workdir", str(tmp_path / "work"), "--only", *names],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    figures = json.loads(out.read_text())
    assert sorted(figures) == sorted(names)
    for name, figure in figures.items():
        assert KEYS <= set(figure), (name, figure)
        assert isinstance(figure["value"], (int, float)) and math.isfinite(figure["value"]), (name, figure)
        assert isinstance(figure["goal"], (int, float)) and isinstance(figure["met"], bool), (name, figure)
        assert figure["tiny"] is True
        assert name in result.stdout  # the readable table
    return figures


def test_in_process_benchmarks_write_their_figures(tmp_path):
    figures = _run_all(tmp_path, ["trainer_overhead", "device_cost_ratio", "search_efficiency_trials"], timeout=300)
    assert "SYNTHETIC" in figures["search_efficiency_trials"]["details"]["objective"]
    assert figures["device_cost_ratio"]["details"]["smoke"]["degrader_flops"] > 0


@pytest.mark.slow
def test_sweep_benchmarks_write_their_figures(tmp_path):
    figures = _run_all(tmp_path, ["time_to_front_s", "trial_overhead", "tradeoff_hv_ratio", "concurrency_speedup",
                                  "scaling_speedup"],
                       timeout=900)
    assert figures["time_to_front_s"]["details"]["complete"] == 2
    assert figures["trial_overhead"]["details"]["per_trial"]
    assert set(figures["scaling_speedup"]["details"]["trial_s"]) == {"1", "2"}  # one worker, two workers


def test_sweeps_asking_for_the_shipped_settings_share_one_run(tmp_path, monkeypatch):
    """Options equal to the profile's own are dropped: the search-efficiency MO-TPE seed-0 sweep is
    the time-to-front sweep (one run, the user's command), a different seed is another run."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import _common
    finally:
        sys.path.remove(str(REPO / "bench"))
    calls = []
    monkeypatch.setattr(_common.Workspace, "_cli", lambda self, args, log, env: calls.append(args) or 1.0)
    monkeypatch.setattr(_common, "_read_sweep", lambda home, command, seconds: command)
    ws = _common.Workspace(tmp_path, keep=True, timeout_s=1.0, threads=1)
    front = ws.sweep("quick")
    assert ws.sweep("quick", trials=8, sampler="tpe", seed=0, concurrency=2) is front
    assert front == "raypriv sweep sbu --synthetic --profile quick"
    assert ws.sweep("quick", sampler="random", seed=1) == "raypriv sweep sbu --synthetic --profile quick --sampler random --seed 1"
    assert len(calls) == 2
