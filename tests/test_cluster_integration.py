"""Cluster mode end to end, on real servers on 127.0.0.1: `ray job submit` of the smoke sweep to a
Ray head, runs on an MLflow tracking server whose artifacts go to S3 (moto), Ray's storage on S3;
the same job submitted again resumes the sweep from S3 and adds no run. A second test runs a
token-auth head: a job with the token joins it, a sweep without the token is refused clearly.

Marked `slow` (CI's `python -m pytest` runs it; `-m "not slow"` skips it) and `cluster`
(`python -m pytest -m cluster` runs the cluster tests alone). Linux only: it reads /proc to find
and measure every process it started. Each server starts in its own session; at the end each
gets SIGTERM by its PID (its process group), and after a short grace every process seen in those
sessions or below them (Ray's services and agents, the job's driver, Train workers) that is still
alive is SIGKILLed by PID. `ray stop` is never used: it kills every Ray process on the machine by
name, other people's included.

It prints each step's wall time and peak memory, summed over this test's process and every
process it started: RSS (shared pages, e.g. torch's libraries, count once per process, so it
overstates) and PSS (shared pages split between the processes that map them: the real total).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sweep_helpers import files_containing

SECRET = "sEcReT-value-that-must-never-leak"  # the dummy S3 secret: no output may contain it
REPO = Path(__file__).resolve().parents[1]
SERVE = REPO / "cluster" / "mlflow" / "serve.sh"
BIN = Path(sys.executable).parent
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

pytestmark = [
    pytest.mark.slow,
    pytest.mark.cluster,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find and measure processes"),
]


def _proc_table() -> dict[int, tuple[int, int, int, int, str]]:
    """pid -> (ppid, session, start time, RSS bytes, state) for every process on the machine."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # fields 3.. of proc(5): state, ppid, pgrp, session, ...
        table[int(entry.name)] = (int(fields[1]), int(fields[3]), int(fields[19]), int(fields[21]) * PAGE, fields[0])
    return table


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")[:100]
    except OSError:
        return "?"


class Processes:
    """The servers this test starts: their sessions, every process under them, and the memory they take."""

    def __init__(self) -> None:
        self.popens: list[tuple[str, subprocess.Popen]] = []
        self.seen: dict[int, int] = {}  # pid -> start time, of every process ever in our trees
        self.steps: dict[str, list[float]] = {}  # name -> [wall seconds, peak RSS bytes, peak PSS bytes]
        self.killed: list[str] = []  # what SIGTERM did not stop
        self._step: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample_forever, daemon=True)
        self._sampler.start()

    def start(self, name: str, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        with open(log, "w") as out:
            proc = subprocess.Popen([str(a) for a in args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO)
        self.popens.append((name, proc))
        return proc

    def run(self, name: str, args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
        """A command in its own session, measured like the servers; killed (with its session) on timeout."""
        proc = subprocess.Popen([str(a) for a in args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, start_new_session=True, cwd=REPO)
        self.popens.append((name, proc))
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            pytest.fail(f"{name} timed out after {timeout:.0f} s:\n{out[-6000:]}")
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")

    def _members(self, table) -> set[int]:
        sessions = {p.pid for _, p in self.popens}
        members = {pid for pid, row in table.items() if row[1] in sessions}
        members |= {pid for pid, start in self.seen.items() if pid in table and table[pid][2] == start}
        children: dict[int, list[int]] = {}
        for pid, row in table.items():
            children.setdefault(row[0], []).append(pid)
        todo = list(members)
        while todo:  # the job's driver runs in a session of its own, below a Ray worker
            for child in children.get(todo.pop(), []):
                if child not in members:
                    members.add(child)
                    todo.append(child)
        return members

    def sample(self) -> None:
        table = _proc_table()
        with self._lock:
            members = self._members(table)
            self.seen.update({pid: table[pid][2] for pid in members})
            pids = [pid for pid in members | {os.getpid()} if pid in table]
            rss = sum(table[pid][3] for pid in pids)
            pss = sum(_pss(pid) for pid in pids)
            if self._step is not None:
                peaks = self.steps[self._step]
                peaks[1], peaks[2] = max(peaks[1], rss), max(peaks[2], pss)

    def _sample_forever(self) -> None:
        while not self._stop.wait(0.5):
            self.sample()

    @contextlib.contextmanager
    def step(self, name: str):
        with self._lock:
            self._step = name
            self.steps[name] = [0.0, 0.0, 0.0]
        started = time.perf_counter()
        try:
            yield
        finally:
            self.sample()
            self.steps[name][0] = time.perf_counter() - started

    def alive(self) -> list[int]:
        table = _proc_table()
        return sorted(pid for pid, start in self.seen.items()
                      if pid in table and table[pid][2] == start and table[pid][4] != "Z")

    def stop_all(self, grace_s: float = 8.0) -> None:
        """SIGTERM every server's process group (the group id is the PID we started; Ray first, then the
        stores it writes to), wait up to `grace_s` in all, then SIGKILL every process of ours still alive
        (what `ray stop --force` would do, but by PID: after a sweep Ray's head does not always finish
        its graceful stop in time)."""
        self.sample()
        for _, proc in reversed(self.popens):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            for _, proc in self.popens:
                proc.poll()  # reap our direct children
            if not self.alive():
                break
            time.sleep(0.25)
        for pid in self.alive():  # leftovers: Ray's services and agents, a job's driver, MLflow's worker
            self.killed.append(_cmdline(pid).split(" ")[0].rsplit("/", 1)[-1] or "?")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for _, proc in self.popens:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        time.sleep(0.5)  # let init reap the SIGKILLed grandchildren
        self._stop.set()

    def table(self) -> str:
        rows = [f"{'step':34s} {'wall s':>7s} {'peak RSS GiB':>13s} {'peak PSS GiB':>13s}"]
        rows += [f"{name:34s} {wall:7.1f} {rss / 2**30:13.2f} {pss / 2**30:13.2f}"
                 for name, (wall, rss, pss) in self.steps.items()]
        if self.killed:
            rows.append(f"SIGKILLed after the grace period: {len(self.killed)} processes "
                        f"({', '.join(sorted(set(self.killed)))})")
        return "\n".join(rows)


def _free_ports(n: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[:3]} exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.25)
    pytest.fail(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-4000:]}")



def _ray_head_command(gcs, dashboard_port, client_port, agent_port, ray_temp) -> list:
    """`ray start --head` on 127.0.0.1 with every port given, 2 CPUs, in the foreground."""
    return [
        BIN / "ray", "start", "--head", "--block", "--node-ip-address=127.0.0.1", "--port", gcs,
        "--dashboard-host=127.0.0.1", "--dashboard-port", dashboard_port, "--ray-client-server-port",
        client_port, "--dashboard-agent-listen-port", agent_port, "--num-cpus", "2", "--temp-dir", ray_temp,
        "--disable-usage-stats",
    ]

@contextlib.contextmanager
def _processes(ray_temp: Path, capsys, title: str):
    """The test's `Processes`; at the end every one is stopped by PID, Ray's temp folder removed and
    the per-step table printed, and (when the test passed) none may be left running."""
    procs = Processes()
    try:
        yield procs
    finally:
        with procs.step("stop everything (by PID)"):
            procs.stop_all()
        shutil.rmtree(ray_temp, ignore_errors=True)
        with capsys.disabled():
            print(f"\n{title}:\n{procs.table()}")
    assert procs.alive() == [], f"left running: {procs.alive()}"


def test_ray_job_submit_runs_the_smoke_sweep_on_a_ray_head_with_mlflow_server_and_s3(tmp_path, capsys):
    import boto3

    from raypriv.sweep import tracking as store

    s3_port, mlflow_port, gcs, dashboard_port, client_port, agent_port = _free_ports(6)
    endpoint, tracking = f"http://127.0.0.1:{s3_port}", f"http://127.0.0.1:{mlflow_port}"
    dashboard = f"http://127.0.0.1:{dashboard_port}"
    ray_temp = Path(tempfile.mkdtemp(prefix="rp-", dir="/tmp"))  # Ray's socket paths must stay short
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_", "AWS_", "RAYPRIV_"))}
    base.update(PATH=f"{BIN}:{os.environ['PATH']}",  # the cluster's Python has raypriv installed
                RAY_AUTH_MODE="disabled", AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
                AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
                AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"))
    s3_keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": SECRET}
    with _processes(ray_temp, capsys, f"cluster integration test, per step (this machine: {os.cpu_count()} CPUs)") as procs:
        with procs.step("moto S3 server"):
            log = tmp_path / "moto.log"
            moto = procs.start("moto", [BIN / "moto_server", "-H", "127.0.0.1", "-p", s3_port], base, log)
            _wait_http(f"{endpoint}/moto-api/", moto, log, timeout=60)
            s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                              aws_secret_access_key=SECRET)
            for bucket in ("raypriv-mlflow", "raypriv-ray"):
                s3.create_bucket(Bucket=bucket)

        with procs.step("mlflow server (serve.sh)"):
            log = tmp_path / "mlflow.log"
            mlflow = procs.start("mlflow", ["bash", SERVE], {
                **base, **s3_keys, "MLFLOW_S3_ENDPOINT_URL": endpoint, "RAYPRIV_MLFLOW_PORT": str(mlflow_port),
                "RAYPRIV_MLFLOW_ARTIFACTS": "s3://raypriv-mlflow/artifacts",
                "RAYPRIV_MLFLOW_HOME": str(tmp_path / "mlflow")}, log)
            _wait_http(f"{tracking}/health", mlflow, log, timeout=180)

        with procs.step("ray start --head"):
            log = tmp_path / "ray-head.log"
            # The nodes' own environment holds their S3 access (an instance role on AWS), never runtime_env.
            head = procs.start("ray head", _ray_head_command(gcs, dashboard_port, client_port, agent_port, ray_temp),
                               {**base, **s3_keys, "AWS_ENDPOINT_URL": endpoint, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"},
                               log)
            _wait_http(f"{dashboard}/api/version", head, log, timeout=180)

        with procs.step("ray job submit: smoke sweep"):
            # Only non-secret settings travel in runtime_env; the two Train switches are the ones the
            # embedded mode sets (faster trial start and stop on one machine).
            runtime_env = {"env_vars": {"MLFLOW_TRACKING_URI": tracking, "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",
                                        "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}}
            # The checkout as git sees it (what Ray uploads: .gitignore applies), copied once so both
            # submissions send the same code, hence the same sweep id, even while the checkout changes.
            source = tmp_path / "checkout"
            listed = subprocess.run(["git", "-C", REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                    capture_output=True)
            if listed.returncode != 0:  # not a git checkout: upload it as it is
                source = REPO
            for name in filter(None, listed.stdout.decode().split("\0") if listed.returncode == 0 else []):
                if (REPO / name).is_file():
                    (source / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(REPO / name, source / name)
            # The RayJob's entrypoint style: --resume-if-exists starts the sweep now, resumes it below.
            sweep_command = ["raypriv", "sweep", "sbu", "--synthetic", "--profile", "smoke", "--trials", "2",
                             "--resume-if-exists", "--home", tmp_path / "home", "--ray-storage", "s3://raypriv-ray/ray"]

            def submit(job_id: str) -> tuple[subprocess.CompletedProcess, dict]:
                run = procs.run("ray job submit", [
                    BIN / "ray", "job", "submit", "--address", dashboard, "--submission-id", job_id,
                    "--working-dir", source, "--runtime-env-json", json.dumps(runtime_env), "--", *sweep_command,
                ], base, timeout=900)
                with urllib.request.urlopen(f"{dashboard}/api/jobs/{job_id}", timeout=30) as response:
                    return run, json.load(response)

            first, job = submit("raypriv-smoke")
        out = first.stdout
        assert first.returncode == 0, out[-8000:]
        assert job["status"] == "SUCCEEDED", job
        assert SECRET not in json.dumps(job)  # the job's runtime_env, as the dashboard shows it
        assert f"Ray cluster at 127.0.0.1:{gcs}: 2 CPUs" in out and "local Ray" not in out  # joined, never started
        assert "2 trials, 2 complete (2 COMPLETE in the Optuna study), 0 failed" in out
        assert f"open the MLflow server at {tracking}" in out
        assert "WARNING: the job's runtime_env" not in out and SECRET not in out

        with procs.step("the same job again (resumes from S3)"):
            again, job = submit("raypriv-smoke-again")
        assert again.returncode == 0 and job["status"] == "SUCCEEDED", again.stdout[-8000:]
        assert "resuming the Tune experiment at s3://raypriv-ray/ray/tune/sbu-smoke-" in again.stdout
        assert "2 trials, 2 complete (2 COMPLETE in the Optuna study), 0 failed" in again.stdout
        assert SECRET not in again.stdout

        with procs.step("check MLflow server and S3 objects"):
            client = store.client(tracking)
            experiment = client.get_experiment_by_name("sbu")
            assert experiment.artifact_location.startswith("mlflow-artifacts:")  # proxied: no S3 keys on workers
            parents = client.search_runs([experiment.experiment_id], f"tags.`{store.TAG_ROLE}` = 'sweep'")
            assert len(parents) == 1 and parents[0].info.status == "FINISHED"
            parent, sweep = parents[0].info.run_id, parents[0].data.tags[store.TAG_SWEEP]
            children = store.child_runs(client, experiment.experiment_id, parent)
            assert sorted(c.info.run_name for c in children) == ["trial_0000", "trial_0001"]  # none added on resume
            for child in children:
                assert child.info.status == "FINISHED" and 0 <= child.data.metrics["privacy_acc"] <= 1

            def objects(bucket: str, prefix: str) -> set[str]:
                pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                return {obj["Key"][len(prefix):] for page in pages for obj in page.get("Contents", [])}

            run_prefix = f"artifacts/{experiment.experiment_id}/{{}}/artifacts/"
            parent_objects = objects("raypriv-mlflow", run_prefix.format(parent))
            assert {"pareto.csv", "pareto.png", "pareto.html", "hypervolume.csv", "space.yaml"} <= parent_objects
            assert any(key.startswith("front/trial_") for key in parent_objects), parent_objects
            for child in children:
                assert {"degrader.pt2", "metrics.json"} <= objects("raypriv-mlflow", run_prefix.format(child.info.run_id))
            ray_objects = objects("raypriv-ray", "ray/")
            assert any(key.startswith(f"tune/{sweep}/") for key in ray_objects), sorted(ray_objects)[:20]
            assert any(key.startswith(f"train/{sweep}/trial_0000/") for key in ray_objects), sorted(ray_objects)[:20]

        with procs.step("secrets: ray job logs, stores, objects, Ray's logs"):
            # Issue 6 scenario 6: the S3 secret is in the nodes' environment only; it must reach no
            # log, MLflow param / tag / artifact, Ray checkpoint or error message.
            logs = procs.run("ray job logs", [BIN / "ray", "job", "logs", "--address", dashboard, "raypriv-smoke"],
                             base, timeout=120)
            assert logs.returncode == 0 and "Pareto front" in logs.stdout and SECRET not in logs.stdout
            for bucket in ("raypriv-mlflow", "raypriv-ray"):
                for key in objects(bucket, ""):
                    assert SECRET.encode() not in s3.get_object(Bucket=bucket, Key=key)["Body"].read(), key
            for folder in (ray_temp, tmp_path / "mlflow", tmp_path / "home"):
                # runtime_resources/ holds the uploaded checkout, whose tests name SECRET themselves.
                leaks = files_containing(folder, SECRET.encode(), skip="runtime_resources")
                assert leaks == [], leaks
            for child in children:
                assert SECRET not in json.dumps({**child.data.params, **child.data.tags})


def test_token_auth_cluster_accepts_jobs_with_its_token_and_raypriv_names_the_fix_without_it(tmp_path, capsys):
    """RAY_AUTH_MODE=token on the head: a job with the token joins; a sweep without it fails in seconds
    (ray.init alone would wait forever), and no output ever holds the token."""
    gcs, dashboard_port, client_port, agent_port = _free_ports(4)
    dashboard = f"http://127.0.0.1:{dashboard_port}"
    token = "raypriv-test-" + os.urandom(16).hex()
    token_file = tmp_path / "ray-token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    ray_temp = Path(tempfile.mkdtemp(prefix="rp-", dir="/tmp"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_", "RAYPRIV_"))}
    base["PATH"] = f"{BIN}:{os.environ['PATH']}"
    with_token = {**base, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file)}
    with _processes(ray_temp, capsys, "token-auth cluster test, per step") as procs:
        with procs.step("ray start --head (token auth)"):
            log = tmp_path / "ray-head.log"
            head = procs.start("ray head", _ray_head_command(gcs, dashboard_port, client_port, agent_port, ray_temp),
                               {**with_token, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}, log)
            deadline = time.monotonic() + 180
            while True:  # the dashboard answers 401 to a request without the token once it is up
                try:
                    urllib.request.urlopen(f"{dashboard}/api/version", timeout=2).close()
                    break
                except urllib.error.HTTPError:
                    break
                except (urllib.error.URLError, OSError):
                    assert head.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
                    time.sleep(0.25)

        with procs.step("raypriv sweep without the token"):
            refused = procs.run("raypriv sweep", [
                BIN / "raypriv", "sweep", "sbu", "--synthetic", "--profile", "smoke", "--home", tmp_path / "h",
            ], {**base, "RAY_AUTH_MODE": "disabled", "RAY_ADDRESS": f"127.0.0.1:{gcs}"}, timeout=120)
        assert refused.returncode != 0 and "Traceback" not in refused.stdout, refused.stdout[-4000:]
        assert "requires token authentication" in refused.stdout and "RAY_AUTH_TOKEN_PATH" in refused.stdout
        assert not (tmp_path / "h").exists()

        with procs.step("ray job submit with the token"):
            # --concurrency 512 stops the sweep at its resource check, right after it joined the cluster.
            joined = procs.run("ray job submit", [
                BIN / "ray", "job", "submit", "--address", dashboard, "--working-dir", ".", "--",
                "raypriv", "sweep", "sbu", "--synthetic", "--profile", "smoke", "--concurrency", "512",
                "--home", tmp_path / "home",
            ], with_token, timeout=300)
        assert f"Ray cluster at 127.0.0.1:{gcs}: 2 CPUs" in joined.stdout, joined.stdout[-6000:]
        assert "--concurrency 512 x 1 CPUs per trial = 512 CPUs, but the cluster has 2" in joined.stdout

        with procs.step("ray job submit without the token"):
            anonymous = procs.run("ray job submit", [BIN / "ray", "job", "submit", "--address", dashboard, "--",
                                                     "true"], {**base, "RAY_AUTH_MODE": "disabled"}, timeout=120)
        assert anonymous.returncode != 0 and "token" in anonymous.stdout.lower()
        for run in (refused, joined, anonymous):
            assert token not in run.stdout
        leaks = files_containing(ray_temp, token.encode(), skip="runtime_resources")
        assert leaks == [], leaks  # Ray's own logs (GCS, raylet, dashboard, job driver) never hold the token
