"""Bad cluster inputs fail fast with a clear message and no secret in it (no Ray, no MLflow server).

`raypriv sweep` checks RAY_ADDRESS, MLFLOW_TRACKING_URI and an s3:// --ray-storage before it
starts or writes anything (`raypriv.sweep.preflight`); `cluster/mlflow/serve.sh` checks its S3
bucket before it starts MLflow. Each case here takes at most a few seconds.
"""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from raypriv.cli import cli
from raypriv.sweep import preflight as cluster
from raypriv.sweep.tracking import locations, storage_exists

REPO = Path(__file__).resolve().parents[1]
SERVE = REPO / "cluster" / "mlflow" / "serve.sh"
SECRET = "sEcReT-value-that-must-never-leak"
ENV_VARS = ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "RAYPRIV_HOME", "RAYPRIV_OPTUNA_STORAGE", "RAYPRIV_SBU_ROOT",
            "RAYPRIV_RAY_STORAGE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "AWS_PROFILE", "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
            "MLFLOW_S3_ENDPOINT_URL", "MLFLOW_HTTP_REQUEST_MAX_RETRIES")


@pytest.fixture
def env(monkeypatch, tmp_path):
    """No cluster settings, no AWS config of the developer's, token auth explicitly off."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return monkeypatch


@pytest.fixture
def s3(env, moto_endpoint):
    """Dummy credentials (the secret one must never be printed) and an existing bucket `raypriv-ray`."""
    env.setenv("AWS_ACCESS_KEY_ID", "testing")
    env.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    env.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")).close()
    client = boto3.client("s3")
    client.create_bucket(Bucket="raypriv-ray")
    return client


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sweep(tmp_path: Path, *args: str):
    """`raypriv sweep sbu --profile smoke` in-process; returns (result, seconds)."""
    started = time.perf_counter()
    result = CliRunner().invoke(cli, ["sweep", "sbu", "--profile", "smoke", "--home", str(tmp_path / "home"), *args])
    return result, time.perf_counter() - started


def _refused(result, tmp_path: Path, *needles: str) -> None:
    out = result.output
    assert result.exit_code != 0 and "Traceback" not in out, out
    for needle in needles:
        assert needle in out, (needle, out)
    assert SECRET not in out
    assert not (tmp_path / "home").exists()  # refused before anything was written


def test_unreachable_ray_address(env, tmp_path):
    port = _closed_port()
    env.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    result, seconds = _sweep(tmp_path, "--synthetic")
    _refused(result, tmp_path, f"cannot reach the Ray cluster at RAY_ADDRESS=127.0.0.1:{port}", "refused",
             "ray start --head")
    assert seconds < 15  # ray.init would retry for minutes


def test_dashboard_address_in_ray_address_points_to_ray_job_submit(env, tmp_path):
    env.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")
    result, _ = _sweep(tmp_path, "--synthetic")
    _refused(result, tmp_path, "dashboard (Jobs API) address", "ray job submit --address http://127.0.0.1:8265")


def test_a_port_that_is_not_a_ray_cluster_times_out_clearly(env, tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    env.setenv("RAY_ADDRESS", f"127.0.0.1:{server.getsockname()[1]}")
    env.setenv(cluster.RAY_CONNECT_TIMEOUT_ENV, "3")
    try:
        result, seconds = _sweep(tmp_path, "--synthetic")
    finally:
        server.close()
    _refused(result, tmp_path, "accepts connections but did not answer as a Ray cluster within 3 s", "6379")
    assert seconds < 15


def test_unreachable_tracking_server_after_a_bounded_retry_without_its_password(env, tmp_path):
    port = _closed_port()
    env.setenv("MLFLOW_TRACKING_URI", f"http://raypriv:{SECRET}@127.0.0.1:{port}")
    result, seconds = _sweep(tmp_path, "--synthetic")
    _refused(result, tmp_path, f"the MLflow tracking server at http://raypriv:***@127.0.0.1:{port}", "is not reachable",
             "4 attempts", "cluster/mlflow/serve.sh")
    assert seconds < 20  # MLflow's own client would retry for about four minutes


def test_tracking_retries_back_off_and_stop():
    waits = []
    with pytest.raises(cluster.ClusterError, match="3 attempts"):
        cluster.check_tracking_server(f"http://127.0.0.1:{_closed_port()}", attempts=3, sleep=waits.append)
    assert waits == [0.5, 1.0]
    cluster.check_tracking_server("sqlite:////nowhere/mlflow.db")  # not a server: nothing to check


def test_tracking_server_that_refuses_the_host_header_names_allowed_hosts(env, tmp_path):
    class Forbidden(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            self.send_response(403)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Forbidden)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{server.server_port}")
    try:
        result, _ = _sweep(tmp_path, "--synthetic")
    finally:
        server.shutdown()
    _refused(result, tmp_path, "HTTP 403", f"--allowed-hosts 127.0.0.1:{server.server_port}")


def test_missing_bucket_for_ray_storage(s3, tmp_path):
    result, _ = _sweep(tmp_path, "--synthetic", "--ray-storage", "s3://no-such-bucket/ray")
    _refused(result, tmp_path, "S3 bucket 'no-such-bucket' does not exist",
             "writing Ray checkpoints (--ray-storage) to s3://no-such-bucket/ray")


def test_missing_credentials_for_ray_storage_and_for_an_s3_data_root(s3, tmp_path):
    s3.put_object(Bucket="raypriv-ray", Key="sbu/s01s02/01/001/rgb_000001.png", Body=b"x")
    os.environ.pop("AWS_ACCESS_KEY_ID")  # the key id is missing, the secret is not
    result, _ = _sweep(tmp_path, "--synthetic", "--ray-storage", "s3://raypriv-ray/ray")
    _refused(result, tmp_path, "no usable AWS credentials for writing Ray checkpoints (--ray-storage) to "
                               "s3://raypriv-ray/ray")
    result, _ = _sweep(tmp_path, "--root", "s3://raypriv-ray/sbu")
    _refused(result, tmp_path, "no usable AWS credentials", "s3://raypriv-ray/sbu")


def test_resume_flags(env, tmp_path):
    result, _ = _sweep(tmp_path, "--synthetic", "--resume", "--resume-if-exists")
    assert result.exit_code != 0 and "not both" in result.output
    # With no sweep to resume, --resume-if-exists goes on to start one (and meets the next check).
    env.setenv("RAY_ADDRESS", f"127.0.0.1:{_closed_port()}")
    result, _ = _sweep(tmp_path, "--synthetic", "--resume-if-exists")
    _refused(result, tmp_path, "cannot reach the Ray cluster")
    assert "nothing to resume" not in result.output


def test_storage_exists_for_folders_and_s3_prefixes(s3, tmp_path):
    assert storage_exists(str(tmp_path)) and not storage_exists(str(tmp_path / "nope"))
    assert not storage_exists("s3://raypriv-ray/ray/tune/x")
    s3.put_object(Bucket="raypriv-ray", Key="ray/tune/x/experiment_state.json", Body=b"{}")
    assert storage_exists("s3://raypriv-ray/ray/tune/x")


def test_ray_storage_location(env, tmp_path):
    where = locations(tmp_path / "home")
    assert where.tune_storage == f"{tmp_path}/home/ray/tune"
    assert where.train_storage("s") == f"{tmp_path}/home/ray/train/s"
    env.setenv("RAYPRIV_RAY_STORAGE", "s3://bucket/prefix/")
    where = locations(tmp_path / "home")
    assert where.tune_storage == "s3://bucket/prefix/tune" and where.train_storage("s") == "s3://bucket/prefix/train/s"
    assert locations(tmp_path, ray_storage="rel").ray_root == str(Path("rel").resolve())


def test_secret_looking_runtime_env_names():
    env = {"AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": "t", "RAY_AUTH_TOKEN": "t", "WANDB_API_KEY": "k",
           "MLFLOW_TRACKING_PASSWORD": "p", "MLFLOW_TRACKING_URI": f"http://me:{SECRET}@host:5000",
           "RAY_AUTH_TOKEN_PATH": "/run/token", "TOKENIZERS_PARALLELISM": "false", "RAYPRIV_HOME": "/data",
           "AWS_ENDPOINT_URL": "http://minio:9000"}
    assert cluster.secret_env_names(env) == ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "MLFLOW_TRACKING_PASSWORD",
                                             "MLFLOW_TRACKING_URI", "RAY_AUTH_TOKEN", "WANDB_API_KEY"]


def _serve(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SERVE)], env=env, capture_output=True, text=True, timeout=60)


def test_serve_sh_refuses_a_missing_bucket_or_missing_credentials_before_starting(s3, tmp_path):
    env = {**os.environ, "RAYPRIV_MLFLOW_HOME": str(tmp_path / "mlflow"),
           "MLFLOW_S3_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
           "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("AWS_ENDPOINT_URL")  # the server reads MLFLOW_S3_ENDPOINT_URL
    usage = _serve(env)
    assert usage.returncode == 2 and "RAYPRIV_MLFLOW_ARTIFACTS" in usage.stderr
    missing = _serve({**env, "RAYPRIV_MLFLOW_ARTIFACTS": "s3://no-such-bucket/mlflow"})
    assert missing.returncode != 0 and "S3 bucket 'no-such-bucket' does not exist" in missing.stderr
    no_keys = {k: v for k, v in env.items() if k != "AWS_ACCESS_KEY_ID"}
    denied = _serve({**no_keys, "RAYPRIV_MLFLOW_ARTIFACTS": "s3://raypriv-ray/mlflow"})
    assert denied.returncode != 0 and "no AWS credentials for s3://raypriv-ray/mlflow" in denied.stderr
    for run in (usage, missing, denied):
        assert SECRET not in run.stdout + run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "mlflow" / "mlflow.db").exists()  # MLflow never started


def test_a_failing_tracking_store_ends_the_set_up_quickly_and_without_credentials(env, tmp_path, monkeypatch):
    from mlflow.exceptions import MlflowException

    from raypriv.sweep import driver

    seen = {}

    def failing(*args, **kwargs):
        seen["retries"] = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
        raise MlflowException(f"API request to http://me:{SECRET}@mlflow:5000/api/2.0/mlflow-artifacts/artifacts/1/x "
                              f"failed with exception ResponseError('too many 500 error responses')")

    from raypriv.sweep import tracking
    from raypriv.sweep.config import SweepSettings

    monkeypatch.setattr(tracking, "ensure_experiment", failing)
    env.setenv("MLFLOW_TRACKING_URI", f"http://me:{SECRET}@mlflow:5000")
    with pytest.raises(driver.SweepError) as excinfo:
        driver._start_tracking("sbu", "s", SweepSettings(), locations(tmp_path), role="sweep", params={}, texts={},
                               synthetic=True, root=None, use_gpu=False, run=None, space={})
    message = str(excinfo.value)
    assert seen["retries"] == "2" and "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ
    assert "too many 500 error responses" in message and "--artifacts-destination bucket exists" in message
    assert SECRET not in message
