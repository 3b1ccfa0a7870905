"""The MLflow UI in a real browser: a sweep's parent run shows its front as a table, and the addresses
raypriv prints open the experiment in the model-training view.

Starts `mlflow server` on 127.0.0.1 over a small sqlite store written the way a sweep writes it
(`ensure_experiment`, the parent run's description from `front_markdown`), and reads the pages
with headless Chromium's `--dump-dom` (Debian's `chromium` package; skipped where there is none).
MLflow 3.17's UI opens an experiment in the view chosen in its sidebar (GenAI unless the browser
chose otherwise), whatever the experiment's `mlflow.experimentKind` tag says, so raypriv's
addresses carry `?workflowType=machine_learning` (`raypriv.sweep.tracking.ui_path`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from raypriv.report.front import build_report, front_markdown
from raypriv.sweep import tracking as store
from test_confirmation import GROUPS, _record

BROWSER = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(BROWSER is None, reason="no Chromium found (Debian: apt-get install chromium); "
                                               "the MLflow UI check needs a real browser"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sweep_store(tmp_path):
    """A sqlite store holding the experiment and a sweep's parent run with its front as description."""
    where = store.locations(tmp_path / "home")
    where.home.mkdir()
    client = store.client(where.tracking_uri)
    experiment_id = store.ensure_experiment(client, "sbu", where.artifact_root)
    parent = store.start_parent(client, experiment_id, "sbu-smoke-tpe-s0-browser", {})
    records = [_record(n, t, p) for n, t, p in [(0, 0.50, 0.25), (1, 0.65, 0.30), (2, 0.60, 0.10), (4, 0.62, 0.35)]]
    report = build_report(records, tmp_path / "report", sweep="sbu-smoke-tpe-s0-browser", confirmed=GROUPS)
    client.set_tag(parent, "mlflow.note.content", front_markdown(report, lambda run: store.ui_path(experiment_id, run)))
    client.set_terminated(parent)
    return where, experiment_id, parent


@pytest.fixture
def mlflow_ui(sweep_store, tmp_path):
    """`mlflow server` over the store on 127.0.0.1 (one worker, no job runner: seconds to start)."""
    where, _, _ = sweep_store
    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri",
                               where.tracking_uri, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(base + "health", timeout=2)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    pytest.fail(f"mlflow server did not come up:\n{(tmp_path / 'server.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its uvicorn worker, started above
        server.wait(timeout=30)
        log.close()


def _dom(url: str, profile: Path) -> str:
    """The page's DOM once its scripts ran (headless Chromium, a fresh profile: no stored UI settings)."""
    out = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def _text(dom: str) -> str:
    dom = re.sub(r"<(style|svg|script)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def test_the_parent_run_shows_the_front_and_the_experiment_opens_in_the_training_view(sweep_store, mlflow_ui, tmp_path):
    _, experiment_id, parent = sweep_store
    run_page = _dom(mlflow_ui + store.ui_path(experiment_id, parent), tmp_path / "profile-run")
    # The description is rendered as a table: the front's trials, mean ± std, links to their runs.
    assert "<th>trial</th>" in run_page and "<td>trial_0002</td>" in run_page and "<td>61.0 ± 1.4 %</td>" in run_page
    assert "<td>front, knee</td>" in run_page and "<td>no_game</td>" in run_page
    assert f'href="#/experiments/{experiment_id}/runs/trial_0002-s1?workflowType=machine_learning"' in run_page
    experiment_page = _text(_dom(mlflow_ui + store.ui_path(experiment_id), tmp_path / "profile-experiment"))
    # The model-training view: the runs table (with the sweep's parent run) and the Model registry in
    # the sidebar; the GenAI view would open on Observability and trace charts instead.
    assert "Run Name" in experiment_page and "sbu-smoke-tpe-s0-browser" in experiment_page
    assert "Model registry" in experiment_page and "Observability" not in experiment_page
