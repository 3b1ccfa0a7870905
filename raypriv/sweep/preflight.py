"""Cluster inputs, checked before a sweep touches Ray, MLflow or S3: each bad input fails in
seconds with what is wrong and what to do, and no message ever holds a secret.

Without these checks the libraries wait instead of failing (measured, Ray 2.60 / MLflow 3.17):
`ray.init` retries an unreachable `RAY_ADDRESS` for minutes and waits forever on a token-auth
cluster it has no token for; MLflow's client retries an unreachable or failing server for about
four minutes.

- `check_ray_address`: `RAY_ADDRESS` must be a Ray GCS that answers (`HOST:PORT`, or
  `ray://HOST:PORT` for Ray Client). A dashboard `http://` address, a closed port, a port that is
  not Ray, and a token-auth cluster without a token are refused with the fix.
- `check_tracking_server`: an http(s) `MLFLOW_TRACKING_URI` must answer `/health`, retried with
  backoff a bounded number of times.
- `check_object_store`: an `s3://` location must be a bucket this process can list.
- `check_resources`: the trials running at once, each a Tune function plus its Train workers, must
  fit the cluster's CPUs and GPUs (else they wait forever).
- `secret_env_names`: variables in a job's `runtime_env` that look like secrets (Ray shows
  runtime_env in plaintext in the dashboard and logs), for the driver to warn about.
"""

from __future__ import annotations

import math
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable, Mapping

from raypriv.sweep.config import SweepSettings

RAY_CONNECT_TIMEOUT_ENV = "RAYPRIV_RAY_CONNECT_TIMEOUT_S"
TOKEN_HELP = ("set RAY_AUTH_MODE=token and give this process the cluster's token in a file: "
              "RAY_AUTH_TOKEN_PATH=/path/to/token (or ~/.ray/auth_token); see cluster/README.md, 'Token auth'")


class ClusterError(RuntimeError):
    """A cluster input (Ray address, tracking server, object store) is unusable; the message says why."""


def check_ray_address(address: str, *, attempts: int = 3, probe_timeout_s: float | None = None) -> None:
    """Raise `ClusterError` unless `address` (the value of RAY_ADDRESS) is a Ray cluster this process can join."""
    address = address.strip()
    if address in ("", "auto", "local"):
        return  # ray.init finds (or fails to find) the local cluster itself, quickly
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "", address
    if scheme in ("http", "https"):
        raise ClusterError(
            f"RAY_ADDRESS={address} is a dashboard (Jobs API) address, the one `ray job submit --address` "
            f"takes; submit the sweep as a job (`ray job submit --address {address} --working-dir . -- raypriv "
            f"sweep ...`), or set RAY_ADDRESS to the cluster's GCS address (HOST:6379)")
    if scheme not in ("", "ray"):
        raise ClusterError(f"RAY_ADDRESS={address}: unknown scheme {scheme}://; expected HOST:PORT (the GCS, "
                           f"port 6379 by default) or ray://HOST:PORT (Ray Client)")
    host, port = _split_host_port(rest.rstrip("/"))
    if port is None:
        raise ClusterError(f"RAY_ADDRESS={address} has no port; expected HOST:PORT (the GCS, port 6379 by default)")
    reason, seconds = _wait_for_port(host, port, attempts)
    if reason:
        raise ClusterError(
            f"cannot reach the Ray cluster at RAY_ADDRESS={address}: {reason} ({attempts} attempts over "
            f"{seconds:.0f} s). Start a head (`ray start --head --dashboard-host=127.0.0.1`), fix RAY_ADDRESS, "
            f"or unset it to run on a local Ray")
    if scheme == "":
        _probe_gcs(address, f"{host}:{port}", probe_timeout_s or float(os.environ.get(RAY_CONNECT_TIMEOUT_ENV, 20)))


def _split_host_port(hostport: str) -> tuple[str, int | None]:
    if hostport.startswith("["):  # [::1]:6379
        host, _, port = hostport[1:].partition("]:")
    else:
        host, _, port = hostport.rpartition(":")
    try:
        return host, int(port)
    except ValueError:
        return hostport, None


def _wait_for_port(host: str, port: int, attempts: int, first_wait_s: float = 0.5) -> tuple[str, float]:
    """("", seconds) once a TCP connection opens, else (the last error, seconds) after `attempts` tries."""
    started, wait, reason = time.monotonic(), first_wait_s, ""
    for attempt in range(attempts):
        try:
            with socket.create_connection((host, port), timeout=3):
                return "", time.monotonic() - started
        except OSError as err:
            reason = err.strerror or type(err).__name__
        if attempt < attempts - 1:
            time.sleep(wait)
            wait *= 2
    return reason, time.monotonic() - started


# Runs in a child process: a GCS client that cannot connect retries in native threads that no
# timeout of ours can stop, so the child is killed instead. Prints one word, or "error ...".
_PROBE = """
import sys
try:
    from ray._raylet import GcsClient
except Exception:
    print("skip", flush=True)
    sys.exit()
try:
    GcsClient(address=sys.argv[1]).internal_kv_get(b"raypriv-probe", None, timeout=5)
except Exception as err:
    if type(err).__name__ == "AuthenticationError":
        print("auth", flush=True)
    else:
        print("error", type(err).__name__, (str(err).splitlines() or [""])[0][:300], flush=True)
else:
    print("ok", flush=True)
"""


def _probe_gcs(address: str, gcs: str, timeout_s: float) -> None:
    """Ask the GCS for one key, with this process's auth settings, in a child process we can time out."""
    try:
        out = subprocess.run([sys.executable, "-c", _PROBE, gcs], capture_output=True, text=True,
                             timeout=timeout_s, stdin=subprocess.DEVNULL).stdout.strip().splitlines()
    except subprocess.TimeoutExpired:
        raise ClusterError(
            f"RAY_ADDRESS={address} accepts connections but did not answer as a Ray cluster within "
            f"{timeout_s:g} s: is it the GCS port (6379 by default)? The dashboard port (8265) is for "
            f"`ray job submit`. A slow cluster may need a larger {RAY_CONNECT_TIMEOUT_ENV}") from None
    verdict = out[-1] if out else "skip"
    if verdict == "auth":
        mode = os.environ.get("RAY_AUTH_MODE", "unset")
        raise ClusterError(f"the Ray cluster at RAY_ADDRESS={address} requires token authentication and this "
                           f"process has no valid token (RAY_AUTH_MODE is {mode}): {TOKEN_HELP}")
    if verdict.startswith("error"):
        raise ClusterError(f"the Ray cluster at RAY_ADDRESS={address} did not answer: {verdict[6:]}")


def check_tracking_server(uri: str, *, attempts: int = 4, first_wait_s: float = 0.5, timeout_s: float = 5.0,
                          sleep: Callable[[float], None] = time.sleep) -> None:
    """Raise `ClusterError` unless an http(s) MLflow tracking URI answers /health within `attempts` tries."""
    from raypriv.sweep.tracking import redact

    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return  # sqlite://, databricks, ...: MLflow's client reports its own errors quickly
    shown = redact(uri)
    netloc = parts.netloc.rpartition("@")[2]  # credentials never go into a probe or a message
    url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/health", "", ""))
    started, wait, reason = time.monotonic(), first_wait_s, ""
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=timeout_s):
                return
        except urllib.error.HTTPError as err:
            if err.code == 403:
                raise ClusterError(
                    f"the MLflow server at {shown} refused this client (HTTP 403): MLflow rejects Host headers "
                    f"it does not know; start it with --allowed-hosts {netloc} (RAYPRIV_MLFLOW_ALLOWED_HOSTS for "
                    f"cluster/mlflow/serve.sh)") from None
            if err.code == 401:
                raise ClusterError(f"the MLflow server at {shown} requires authentication (HTTP 401): set "
                                   f"MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD") from None
            if err.code == 404:
                raise ClusterError(f"{shown} answered 404 to /health: is MLFLOW_TRACKING_URI an MLflow tracking "
                                   f"server (with --static-prefix, include the prefix)?") from None
            reason = f"HTTP {err.code}"  # 5xx: the server may be starting; retry
        except (urllib.error.URLError, OSError) as err:
            cause = getattr(err, "reason", err)
            reason = getattr(cause, "strerror", None) or str(cause)
        if attempt < attempts - 1:
            sleep(wait)
            wait *= 2
    raise ClusterError(
        f"the MLflow tracking server at {shown} (MLFLOW_TRACKING_URI) is not reachable: {reason} ({attempts} "
        f"attempts over {time.monotonic() - started:.0f} s). Start one (cluster/mlflow/serve.sh), fix "
        f"MLFLOW_TRACKING_URI, or unset it to record into a sqlite store under --home")


def check_object_store(uri: str, action: str) -> None:
    """Raise `ClusterError` unless an s3:// `uri` is in a bucket this process can list (others: nothing to check).

    `action` words the message: "S3 bucket 'b' does not exist (<action> s3://b/prefix)".
    """
    if not uri.startswith("s3://"):
        return
    from raypriv.method.data.storage import check_s3_prefix

    try:
        check_s3_prefix(uri, action=action)
    except (FileNotFoundError, PermissionError, RuntimeError, ValueError) as err:
        raise ClusterError(str(err)) from None


_SECRET_NAME = re.compile(r"(^|_)(SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIALS?)(_|$)|_KEY$")


def secret_env_names(env_vars: Mapping[str, str]) -> list[str]:
    """Names among `env_vars` that look like secrets (paths to secret files are fine)."""
    names = []
    for name, value in env_vars.items():
        upper = name.upper()
        if upper.endswith(("_PATH", "_FILE")):
            continue
        if _SECRET_NAME.search(upper) or re.search(r"://[^/@\s]*:[^/@\s]*@", str(value)):
            names.append(name)
    return sorted(names)


class ResourceError(RuntimeError):
    """The requested trials do not fit the cluster: they would wait for resources forever."""


def check_resources(s: SweepSettings, cluster: dict[str, float], *, use_gpu: bool, source: str) -> None:
    """Fail unless `concurrency` trials, each its Tune function plus its Train workers, fit `cluster`.

    Train workers sit in their own placement groups that Tune's `max_concurrent_trials` does not
    see: if the trial functions hold the CPUs the workers need, nothing ever starts.
    """
    cpus = float(cluster.get("CPU", 0))
    gpus = float(cluster.get("GPU", 0))
    per_trial = s.trial_cpus + s.workers * s.cpus_per_worker
    where = f"(sweep settings from {source} and the command line)"
    if per_trial > cpus + 1e-9:
        raise ResourceError(
            f"one trial needs {s.trial_cpus:g} CPU for its Tune function + {s.workers} worker(s) x "
            f"{s.cpus_per_worker:g} CPU = {per_trial:g} CPUs, but the cluster has {cpus:g}; lower "
            f"sweep.cpus_per_worker or sweep.trial_cpus {where}, or add CPUs"
        )
    if s.concurrency * per_trial > cpus + 1e-9:
        fits = max(1, math.floor(cpus / per_trial + 1e-9))
        raise ResourceError(
            f"--concurrency {s.concurrency} x {per_trial:g} CPUs per trial = {s.concurrency * per_trial:g} CPUs, but "
            f"the cluster has {cpus:g}; trials beyond that would wait forever for their Train workers. "
            f"Use --concurrency {fits} (or lower sweep.cpus_per_worker {where})"
        )
    if use_gpu and s.concurrency * s.workers > gpus + 1e-9:
        raise ResourceError(
            f"--concurrency {s.concurrency} x {s.workers} worker(s) x 1 GPU = {s.concurrency * s.workers} GPUs, "
            f"but the cluster has {gpus:g}; lower --concurrency or set sweep.use_gpu: false {where}"
        )
