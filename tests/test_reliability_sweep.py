"""Reliability of a sweep end to end (docs/RELIABILITY.md): the installed CLI on a real local Ray and
real MLflow / Optuna stores, with the `smoke` profile, real faults (processes killed from outside).

1. worker failure: a Ray Train worker of trial_0000 (two data-parallel ranks) is SIGKILLed mid-game
   -> Ray Train restarts the worker group from the trial's last loop checkpoint, the trial
   completes, its child run is tagged with the iteration it resumed from and has one value per step;
4. diverging trial: a learning rate of 1e30 makes a trial's loss NaN -> FAILED with the reason,
   Optuna FAIL, the sweep goes on and the Pareto report leaves it out;
6. secrets (local part; `ray job logs` is in test_cluster_integration.py): a canary S3 secret key
   and Ray token appear in no output and in no file the sweep writes (stores, artifacts, Ray logs);
7. exposure: every TCP port the sweep's processes listen on is bound to 127.0.0.1 (OS socket table);
2. driver killed (SIGKILL of its whole session) mid-game -> `--resume` finishes it from the loop
   checkpoints: one child run per trial, none RUNNING, no metric step logged twice, Optuna
   COMPLETE trials match; a changed space on --resume is refused, listing changes;
3. tracking outage: the MLflow server is stopped for 30 s mid-sweep and restarted -> the sweep
   completes and every metric is there.

Each test prints one `RELIABILITY {...}` line with its measured figures (run with -s to see them).
Slow (a sweep or two each, about 2 minutes on 2 cores); Linux only (reads /proc).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from sweep_helpers import (files_containing, finish, kill_session, listening_sockets, run_raypriv, session_pids,
                           start_raypriv, store_value)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for processes and sockets"),
]

REPO = Path(__file__).resolve().parents[1]
# An 80-iteration game with a checkpoint every 10, killed once iteration 30 is logged: mid-game, after
# three checkpoints, with 50 iterations (over 10 s on 2 cores) still to play.
ITERATIONS, CHECKPOINT_EVERY, KILL_AT = 80, 10, 30
LONG_GAME = ("--set", f"adversarial.iterations={ITERATIONS}", "--set", f"adversarial.checkpoint_every={CHECKPOINT_EVERY}")
CANARY = "canary-Zq8rT3-must-never-appear"
SMOKE = ("sweep", "sbu", "--synthetic", "--profile", "smoke", "--sampler", "random")


def _space(tmp_path: Path, **smoke_space) -> Path:
    """search_spaces/sbu.yaml with extra `smoke` space parameters, as <tmp>/sbu.yaml (same experiment name)."""
    doc = yaml.safe_load((REPO / "search_spaces" / "sbu.yaml").read_text())
    doc["profiles"]["smoke"]["space"].update(smoke_space)
    path = tmp_path / "space" / "sbu.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


def _records(home: Path, tracking_uri: str | None = None):
    """(client, experiment id, parent runs, child runs, Optuna trials) of the only sweep under `home`."""
    import optuna

    from raypriv.sweep import tracking as store

    where = store.locations(home)
    client = store.client(tracking_uri or where.tracking_uri)
    experiment = client.get_experiment_by_name("sbu").experiment_id
    parents = client.search_runs([experiment], f"tags.`{store.TAG_ROLE}` = 'sweep'")
    children = client.search_runs([experiment], f"tags.`{store.TAG_ROLE}` = 'trial'")
    (name,) = optuna.get_all_study_names(where.optuna_storage)
    trials = optuna.load_study(study_name=name, storage=where.optuna_storage).trials
    return client, experiment, parents, children, trials


def _states(trials) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in trials:
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def _one_value_per_step(client, run_id: str) -> list[int]:
    """The steps of train/loss_target, after checking that no train/* metric has a step twice."""
    keys = [k for k in client.get_run(run_id).data.metrics if k.startswith("train/")]
    assert "train/loss_target" in keys
    for key in keys:
        steps = [m.step for m in client.get_metric_history(run_id, key)]
        assert len(steps) == len(set(steps)), f"{key}: a step recorded twice: {sorted(steps)}"
    return sorted(m.step for m in client.get_metric_history(run_id, "train/loss_target"))


def _logged_through(db: Path, trial: str) -> int:
    """The last iteration `trial`'s child run has logged (0 before any)."""
    return store_value(db, "select max(m.step) from metrics m join runs r on m.run_uuid = r.run_uuid where "
                           "m.key = 'train/loss_target' and r.name = ?", (trial,)) or 0


def _train_workers(root_pid: int) -> list[int]:
    """PIDs of the Ray Train worker processes under a session."""
    found = []
    for pid in session_pids(root_pid):
        try:
            if b"RayTrainWorker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return sorted(found)


def test_worker_failure_diverging_trial_secrets_and_exposure(tmp_path):
    home = tmp_path / "home"
    ray_tmp = Path(tempfile.mkdtemp(prefix="rp", dir="/tmp"))  # short: Ray's socket paths have a length limit
    space = _space(tmp_path, lr_degrader={"type": "categorical", "choices": [0.001, 1.0e30]})
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": CANARY, "RAY_AUTH_TOKEN": CANARY,
           "RAY_TMPDIR": str(ray_tmp)}
    # Seed 5 of the random sampler draws lr_degrader 0.001, then 1e30: trial 0 is killed and
    # resumed, trial 1 diverges. One trial at a time, two data-parallel workers each.
    args = (*SMOKE, "--config", str(space), "--seed", "5", "--trials", "2", "--concurrency", "1", "--workers", "2",
            *LONG_GAME)
    proc = start_raypriv(*args, home=home, env=env)
    sockets: set[tuple[int, str, int]] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            sockets.update(listening_sockets(session_pids(proc.pid)))
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    killed = []
    try:
        _wait_for(lambda: _logged_through(home / "mlflow.db", "trial_0000") >= KILL_AT, 300,
                  f"iteration {KILL_AT} of trial_0000", proc)
        workers = _train_workers(proc.pid)
        assert len(workers) == 2, workers  # the trial's two ranks
        os.kill(workers[-1], signal.SIGKILL)
        killed.append(_logged_through(home / "mlflow.db", "trial_0000"))
        run = finish(proc, args, timeout=480)
    finally:
        stop.set()
        watcher.join()
    try:
        out = run.stdout
        assert run.returncode == 0, out[-8000:]
        assert "2 trials, 1 complete (1 COMPLETE in the Optuna study), 0 failed, 1 diverged" in out

        from raypriv.sweep import tracking as store

        client, _, parents, children, trials = _records(home)
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"
        by_name = {c.info.run_name: c for c in children}
        assert sorted(by_name) == ["trial_0000", "trial_0001"] and len(children) == 2
        retried = by_name["trial_0000"]
        assert retried.info.status == "FINISHED" and "target_acc" in retried.data.metrics
        assert store.TAG_FAILURE not in retried.data.tags  # the first attempt's failure is not left behind
        assert retried.data.tags[store.TAG_WORKERS] == "2"
        resumed_from = int(retried.data.tags[store.TAG_RESUMED])  # the last checkpoint before the kill
        assert resumed_from % CHECKPOINT_EVERY == 0 and KILL_AT - CHECKPOINT_EVERY <= resumed_from <= killed[0]
        assert _one_value_per_step(client, retried.info.run_id) == list(range(1, ITERATIONS + 1))
        diverged = [c for c in children if float(c.data.params["lr_degrader"]) > 1]
        assert [c.info.run_name for c in diverged] == ["trial_0001"]
        assert diverged[0].info.status == "FAILED"
        assert diverged[0].data.tags[store.TAG_FAILURE].startswith("diverged: loss became nan")
        assert "target_acc" not in diverged[0].data.metrics
        assert _states(trials) == {"COMPLETE": 1, "FAIL": 1}
        report = (home / "reports").glob("*/pareto.csv")
        rows = list(csv.DictReader(next(report).read_text().splitlines()))
        assert {r["trial"]: r["on_front"] for r in rows}["trial_0001"] == "false"  # never the diverged trial

        # 7. Exposure: Ray (GCS, raylet, dashboard, workers) listened only on 127.0.0.1.
        assert len(sockets) >= 3, sockets
        exposed = {s for s in sockets if s[1] not in ("127.0.0.1", "::1")}
        assert not exposed, f"listening beyond loopback: {exposed}"

        # 6. Secrets: the canary is in no output, store, artifact or Ray log of the sweep.
        assert CANARY not in out
        leaks = files_containing(home, CANARY.encode()) + files_containing(ray_tmp, CANARY.encode())
        assert leaks == []
        seconds = {int(m.step): m.value for m in client.get_metric_history(parents[0].info.run_id, "trial_seconds")}
        print("RELIABILITY " + json.dumps({
            "scenario": "worker failure + diverging trial", "trial_seconds": seconds, "killed_at_iteration": killed[0],
            "resumed_from": resumed_from, "iterations_recomputed": killed[0] - resumed_from,
            "duplicated_runs": len(children) - 2, "missing_runs": 2 - len(by_name),
            "listening_sockets": len(sockets), "exposed": len(exposed), "canary_hits": len(leaks),
        }))
    finally:
        kill_session(proc.pid)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _wait_for(condition, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the sweep ended before {what}:\n{proc.stdout.read()[-5000:]}")
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def _finished_children(db: Path) -> int:
    return store_value(db, "select count(*) from runs r join tags t on r.run_uuid = t.run_uuid where "
                           "t.key = 'raypriv.role' and t.value = 'trial' and r.status = 'FINISHED'") or 0


def test_driver_killed_mid_sweep_resumes_without_losing_or_duplicating_anything(tmp_path):
    from raypriv.sweep import tracking as store

    home = tmp_path / "home"
    args = (*SMOKE, "--trials", "1", "--seed", "0", *LONG_GAME)
    launched = time.monotonic()
    proc = start_raypriv(*args, home=home)
    try:
        _wait_for(lambda: _logged_through(home / "mlflow.db", "trial_0000") >= KILL_AT, 300,
                  f"iteration {KILL_AT} of trial_0000", proc)
        killed_at = time.monotonic()
        os.killpg(proc.pid, signal.SIGKILL)  # the driver dies mid-game, and with it its local Ray
    finally:
        kill_session(proc.pid)
    before = _finished_children(home / "mlflow.db")

    started = time.monotonic()
    resumed = run_raypriv(*args, "--resume", home=home, timeout=480)
    recovered = time.monotonic() - started
    assert resumed.returncode == 0, resumed.stdout[-8000:]
    client, _, parents, children, trials = _records(home)
    names = [c.info.run_name for c in children]
    assert names == ["trial_0000"]  # 0 duplicated, 0 missing
    assert [c.info.status for c in children] == ["FINISHED"]  # none left RUNNING
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert _states(trials) == {"COMPLETE": 1}
    for child in children:
        assert _one_value_per_step(client, child.info.run_id) == list(range(1, ITERATIONS + 1))
    resumed = {c.info.run_name: int(c.data.tags.get(store.TAG_RESUMED, -1)) for c in children}
    assert resumed["trial_0000"] >= 1  # continued from a loop checkpoint, not from the start

    # A changed space on --resume is refused, with what changed; nothing is started or written.
    changed = _space(tmp_path, M={"type": "int", "low": 1, "high": 3})
    refused = run_raypriv(*args, "--config", str(changed), "--resume", home=home, timeout=120)
    assert refused.returncode != 0 and "cannot resume" in refused.stdout
    assert "space.M.high: 2 -> 3" in refused.stdout and "Traceback" not in refused.stdout
    assert len(_records(home)[3]) == 1
    seconds = {int(m.step): round(m.value, 1) for m in client.get_metric_history(parents[0].info.run_id, "trial_seconds")}
    print("RELIABILITY " + json.dumps({
        "scenario": "driver killed", "trial_seconds": seconds, "trials_finished_before_kill": before,
        "resume_seconds": round(recovered, 1), "resumed_from": resumed, "killed_after_s": round(killed_at - launched, 1),
        "duplicated_runs": len(names) - len(set(names)), "missing_runs": 1 - len(set(names)),
    }))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mlflow_server(folder: Path, port: int) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen(
        [str(exe), "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination",
         str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def up() -> bool:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200
        except OSError:
            return False

    _wait_for(up, 120, "the MLflow server")
    return proc


def test_tracking_outage_of_30_seconds_mid_sweep_loses_no_metric(tmp_path):
    home, server_dir = tmp_path / "home", tmp_path / "mlflow"
    server_dir.mkdir()
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    server = _mlflow_server(server_dir, port)
    args = (*SMOKE, "--seed", "0", "--trials", "2")  # both at once: each logs through the outage
    proc = start_raypriv(*args, home=home, env={"MLFLOW_TRACKING_URI": uri})
    try:
        def metrics_flowing() -> bool:
            return (store_value(server_dir / "mlflow.db",
                                "select count(*) from metrics where key = 'train/loss_target'") or 0) >= 1

        _wait_for(metrics_flowing, 300, "the first logged iteration", proc)
        kill_session(server.pid)  # the tracking server goes away ...
        time.sleep(30)
        server = _mlflow_server(server_dir, port)  # ... and comes back on the same port and store
        run = finish(proc, args, timeout=480)
        assert run.returncode == 0, run.stdout[-8000:]
        client, _, parents, children, trials = _records(home, uri)
        assert len(parents) == 1 and sorted(c.info.run_name for c in children) == ["trial_0000", "trial_0001"]
        lost = 0
        for child in children:
            assert child.info.status == "FINISHED"
            steps = _one_value_per_step(client, child.info.run_id)
            lost += 4 - len(steps)
            assert steps == [1, 2, 3, 4]
            assert {"target_acc", "target_acc_fresh", "privacy_acc"} <= set(child.data.metrics)
            assert {"degrader.pt2", "metrics.json"} <= {a.path for a in client.list_artifacts(child.info.run_id)}
        assert _states(trials) == {"COMPLETE": 2}
        print("RELIABILITY " + json.dumps({"scenario": "tracking outage", "outage_s": 30, "metrics_lost": lost}))
    finally:
        kill_session(proc.pid)
        kill_session(server.pid)
