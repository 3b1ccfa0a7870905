"""Every file in cluster/, checked offline: it parses, the launcher config passes Ray's own schema,
entrypoints and documented commands are valid `raypriv` commands on existing search spaces and
profiles, images and versions agree with pyproject.toml, token auth is on, and no secret is inlined.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

from raypriv.cli import cli
from raypriv.sweep.preflight import secret_env_names

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
RAY_PIN = re.search(r"ray\[[^\]]*\]>=(\d+\.\d+)", " ".join(PYPROJECT["project"]["dependencies"])).group(1)
IMAGE = f"raypriv:{VERSION}"  # what cluster/docker/Dockerfile builds (its first line says so)
RAY_IMAGE = re.compile(rf"^rayproject/ray:{re.escape(RAY_PIN)}\.\d+-py3(\d+)(-gpu)?$")
MANIFESTS = sorted(CLUSTER.rglob("*.yaml"))


def _docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _kind(kind: str) -> list[tuple[Path, dict]]:
    return [(path, doc) for path in MANIFESTS for doc in _docs(path) if doc.get("kind") == kind]


def _containers(pod_spec: dict) -> list[dict]:
    return pod_spec.get("containers", []) + pod_spec.get("initContainers", [])


def _ray_cluster_specs() -> list[tuple[str, dict]]:
    specs = [(f"{p.name} RayCluster", d["spec"]) for p, d in _kind("RayCluster")]
    return specs + [(f"{p.name} RayJob", d["spec"]["rayClusterSpec"]) for p, d in _kind("RayJob")]


def _raypriv_args(command: str) -> list[str]:
    """The arguments after `raypriv` in a shell command (continuation lines already joined)."""
    words = shlex.split(command, comments=True)
    return words[words.index("raypriv") + 1:]


def _check_raypriv_command(args: list[str]) -> None:
    """Parse `raypriv ARGS` with the real CLI (options, choices), then resolve the sweep config it names."""
    from raypriv.sweep.config import load_sweep_config

    assert "raypriv" in PYPROJECT["project"]["scripts"]
    import click

    assert args and args[0] == "sweep", args
    context = click.Context(cli, info_name="raypriv")
    params = cli.get_command(context, "sweep").make_context("sweep", list(args[1:]), parent=context).params
    space = REPO / "search_spaces" / f"{params['experiment']}.yaml"
    assert space.exists(), space
    config = load_sweep_config(space, params["profile"], params["overrides"], {
        "trials": params["trials"], "concurrency": params["concurrency"], "workers": params["workers"],
        "sampler": params["sampler"], "seed": params["seed"]})
    assert config.profile == params["profile"]


def test_every_file_is_described_in_the_readme_and_every_yaml_names_its_command():
    readme = (CLUSTER / "README.md").read_text()
    files = [p for p in CLUSTER.rglob("*") if p.is_file() and p.name != "README.md" and "__pycache__" not in p.parts]
    assert files
    for path in files:
        assert str(path.relative_to(CLUSTER)) in readme, path
    for path in MANIFESTS:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# ") and str(path.relative_to(REPO)) in first, (path, first)
        assert _docs(path), path


def test_launcher_config_passes_rays_schema_and_agrees_with_the_project():
    import jsonschema
    import ray.autoscaler

    config = yaml.safe_load((CLUSTER / "aws" / "raypriv.yaml").read_text())
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)

    python = tuple(int(x) for x in PYPROJECT["project"]["requires-python"].lstrip(">=").split("."))
    for key, gpu in (("head_image", False), ("worker_image", True)):
        match = RAY_IMAGE.match(config["docker"][key])
        assert match and (3, int(match.group(1))) >= python and bool(match.group(2)) == gpu, config["docker"][key]
    head = config["available_node_types"][config["head_node_type"]]
    workers = [t for name, t in config["available_node_types"].items() if name != config["head_node_type"]]
    assert "GPU" not in head["resources"] and all(t["resources"].get("GPU", 0) >= 1 for t in workers)
    assert all(t["min_workers"] == t["max_workers"] for t in workers)  # the sweep's resource check sees them

    # raypriv installed in setup from the checkout that file_mounts copies.
    checkout = next(remote for remote, local in config["file_mounts"].items() if local == ".")
    assert f"pip install -q -e {checkout}" in config["setup_commands"]
    assert config["rsync_filter"] == [".gitignore"]
    # Token auth on every node; the token a local file, copied, never written here.
    for commands in (config["head_start_ray_commands"], config["worker_start_ray_commands"]):
        start = next(c for c in commands if "ray start" in c)
        assert "RAY_AUTH_MODE=token" in start, start
    assert config["file_mounts"]["~/.ray/auth_token"].startswith("~/.ray/")
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start and "--num-cpus=0" in head_start
    serve = re.search(r"bash ~/raypriv/(\S+serve\.sh)", head_start).group(1)
    assert (REPO / serve).is_file()


def test_kuberay_manifests_agree_with_the_project():
    specs = _ray_cluster_specs()
    assert {label.split()[-1] for label, _ in specs} == {"RayCluster", "RayJob"}
    for label, spec in specs:
        assert spec["rayVersion"].startswith(f"{RAY_PIN}."), label
        assert spec["authOptions"] == {"mode": "token"}, label
        assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0", label
        head = spec["headGroupSpec"]["template"]["spec"]
        groups = [g["template"]["spec"] for g in spec["workerGroupSpecs"]]
        for pod in [head, *groups]:
            assert {c["image"] for c in _containers(pod)} == {IMAGE}, label
        for group in spec["workerGroupSpecs"]:
            assert group["minReplicas"] == group["replicas"] == group["maxReplicas"], label
            resources = group["template"]["spec"]["containers"][0]["resources"]
            assert resources["limits"]["nvidia.com/gpu"] == "1", label
    for path, deployment in _kind("Deployment"):
        assert {c["image"] for c in _containers(deployment["spec"]["template"]["spec"])} == {IMAGE}, path
    # Every volume claim a pod mounts is defined beside it.
    for path in MANIFESTS:
        docs = _docs(path)
        claims = set(re.findall(r"claimName: (\S+)", path.read_text()))
        defined = {d["metadata"]["name"] for d in docs if d.get("kind") == "PersistentVolumeClaim"}
        assert claims <= defined, path
    dockerfile = (CLUSTER / "docker" / "Dockerfile").read_text()
    assert f"-t {IMAGE} ." in dockerfile.splitlines()[0]


def test_rayjob_entrypoint_is_a_resubmission_safe_sweep_of_an_existing_space():
    (path, job), = _kind("RayJob")
    args = _raypriv_args(job["spec"]["entrypoint"])
    _check_raypriv_command(args)
    assert "--resume-if-exists" in args and "--home" in args and "--ray-storage" in args
    home = args[args.index("--home") + 1]
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert home in {m["mountPath"] for m in head["volumeMounts"]}  # the Optuna study survives a retry
    assert job["spec"]["backoffLimit"] >= 1 and job["spec"]["shutdownAfterJobFinishes"] is True


def _readme_commands() -> list[str]:
    text = (CLUSTER / "README.md").read_text() + (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    joined = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [line for line in joined if "raypriv sweep" in line]


@pytest.mark.parametrize("command", _readme_commands())
def test_documented_sweep_commands_are_valid(command):
    _check_raypriv_command(_raypriv_args(command))


def test_dockerfile_builds_from_the_pinned_ray_image_and_installs_this_checkout():
    dockerfile = (CLUSTER / "docker" / "Dockerfile").read_text()
    base = re.search(r"^ARG RAY_IMAGE=(\S+)$", dockerfile, flags=re.M).group(1)
    assert RAY_IMAGE.match(base), base
    assert "COPY --chown=ray:users . /home/ray/raypriv" in dockerfile
    assert "pip install --no-cache-dir -e /home/ray/raypriv" in dockerfile
    ignored = (CLUSTER / "docker" / "Dockerfile.dockerignore").read_text().split()
    assert {".git", ".venv", ".raypriv"} <= set(ignored)


def test_mlflow_server_script_is_lean_local_and_proxies_artifacts():
    script = (CLUSTER / "mlflow" / "serve.sh").read_text()
    subprocess.run(["bash", "-n", str(CLUSTER / "mlflow" / "serve.sh")], check=True)
    for needle in ("export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false", "--workers 1", "RAYPRIV_MLFLOW_HOST:-127.0.0.1",
                   "--serve-artifacts --artifacts-destination", "MLFLOW_S3_ENDPOINT_URL"):
        assert needle in script, needle
    (path, deployment), = _kind("Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-1] == "/home/ray/raypriv/cluster/mlflow/serve.sh"  # the Dockerfile's COPY target
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["RAYPRIV_MLFLOW_ARTIFACTS"].startswith("s3://")


_SECRET_TEXT = [
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\b(AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|RAY_AUTH_TOKEN|MLFLOW_TRACKING_PASSWORD)\s*[=:]\s*"
               r"(?!\.\.\.|\$|$)[^\s,]+", flags=re.M),
    re.compile(r"\b(aws_secret_access_key|password|auth_token)\s*[=:]\s*['\"][^'\"]+['\"]", flags=re.I),
]


def _inlined_secrets(name: str, text: str, docs: list[dict]) -> list[str]:
    found = [f"{name}: {m.group(0)[:40]}" for pattern in _SECRET_TEXT for m in pattern.finditer(text)]

    def walk(node):
        if isinstance(node, dict):
            if "name" in node and "value" in node and secret_env_names({node["name"]: str(node["value"])}):
                found.append(f"{name}: env {node['name']} has a literal value (use valueFrom / a Secret)")
            if node.get("kind") == "Secret" and (node.get("data") or node.get("stringData")):
                found.append(f"{name}: a Secret with its data inlined")
            if isinstance(node.get("runtimeEnvYAML"), str):
                env_vars = (yaml.safe_load(node["runtimeEnvYAML"]) or {}).get("env_vars", {})
                found.extend(f"{name}: runtime_env carries {n}" for n in secret_env_names(env_vars))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(docs)
    return found


def test_no_secret_is_inlined_anywhere_in_cluster():
    found = []
    for path in sorted(p for p in CLUSTER.rglob("*") if p.is_file()):
        text = path.read_text()
        found += _inlined_secrets(str(path.relative_to(REPO)), text, _docs(path) if path.suffix == ".yaml" else [])
    assert found == []


def test_the_secret_check_catches_what_it_should():
    bad = """
apiVersion: v1
kind: Secret
metadata: {name: s}
stringData: {auth_token: abc}
---
kind: RayJob
spec:
  runtimeEnvYAML: |
    env_vars: {AWS_SECRET_ACCESS_KEY: wJalrXUtnFEMI}
  template:
    containers: [{name: c, env: [{name: MLFLOW_TRACKING_PASSWORD, value: hunter2}]}]
"""
    found = _inlined_secrets("bad.yaml", bad + "\nsetup: RAY_AUTH_TOKEN=abc123 ray start\nkey AKIAABCDEFGHIJKLMNOP\n",
                             list(yaml.safe_load_all(bad)))
    for needle in ("AKIAABCDEFGHIJKLMNOP", "RAY_AUTH_TOKEN=abc123", "a Secret with its data inlined",
                   "runtime_env carries AWS_SECRET_ACCESS_KEY", "env MLFLOW_TRACKING_PASSWORD has a literal value"):
        assert any(needle in f for f in found), (needle, found)
    assert _inlined_secrets("ok", "AWS_SECRET_ACCESS_KEY=... and RAY_AUTH_TOKEN_PATH=~/.ray/t", []) == []
