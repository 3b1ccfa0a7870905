"""MLflow runs of a sweep on a real sqlite store (no Ray): one parent per sweep, one child per trial
found again on retry, per-iteration metrics with steps, and the report rebuilt from MLflow alone."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from click.testing import CliRunner

from raypriv.cli import cli
from raypriv.method.config import load_run_config
from raypriv.sweep import tracking as store


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory):
    """An empty, already migrated MLflow sqlite store: a fresh one spends seconds on migrations."""
    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    store.client(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def where(tmp_path, monkeypatch, migrated_db):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(store.OPTUNA_STORAGE_ENV, raising=False)
    (tmp_path / "home").mkdir()
    shutil.copy(migrated_db, tmp_path / "home" / "mlflow.db")
    return store.locations(tmp_path / "home")


def _metrics(target, privacy):
    return {"target_acc": target, "target_acc_fresh": target - 0.01, "privacy_acc": privacy, "chance_target": 0.125,
            "chance_privacy": 1 / 13, "privacy_per_attacker": {"plaincnn_d3_w32": privacy, "c3d_tiny": privacy / 2},
            "worst_attacker": "plaincnn_d3_w32", "seconds": {"total": 3.0}, "steps": {"adversarial_steps": 2},
            "budget_models": ["smallcnn_tiny"], "attackers": ["plaincnn_d3_w32", "c3d_tiny"], "degrader_params": 10}


def _trial(where, experiment_id, parent, number, target, privacy, tmp_path, *, full=True):
    run = store.TrialRun.start(where.tracking_uri, experiment_id, parent, sweep="s1", trial=f"trial_{number:04d}",
                               number=number, params={"gamma": 1.0 + number, "budget": "tiny"},
                               tags=store.provenance_tags())
    for it in (1, 2):
        run.log_iteration({"iteration": it, "loss_target": 1.0 / it, "chosen_budget": 0, "label": "skip me"})
    folder = tmp_path / f"out{number}"
    folder.mkdir()
    (folder / "degrader.pt2").write_bytes(b"x")
    (folder / "samples.png").write_bytes(b"png")
    (folder / "config.yaml").write_text(yaml.safe_dump(load_run_config("search_spaces/sbu.yaml", "smoke").model_dump(mode="json")))
    (folder / "metrics.json").write_text(json.dumps(_metrics(target, privacy)))
    run.log_result(_metrics(target, privacy), [folder / n for n in ("degrader.pt2", "samples.png", "config.yaml", "missing.txt")],
                   full_budget=full)
    run.finish()
    return run.run_id


def test_parent_and_child_runs_are_found_again_never_duplicated(where, tmp_path):
    client = store.client(where.tracking_uri)
    experiment_id = store.ensure_experiment(client, "sbu", where.artifact_root)
    assert client.get_experiment(experiment_id).artifact_location == (where.artifact_root / "sbu").as_uri()
    assert store.ensure_experiment(client, "sbu", where.artifact_root) == experiment_id
    parent = store.start_parent(client, experiment_id, "s1", store.provenance_tags())
    assert store.start_parent(client, experiment_id, "s1", {}) == parent  # --resume finds it
    first = _trial(where, experiment_id, parent, 0, 0.7, 0.3, tmp_path)
    client.set_tag(first, store.TAG_FAILURE, "RuntimeError: an earlier attempt failed")
    retried = store.TrialRun.start(where.tracking_uri, experiment_id, parent, sweep="s1", trial="trial_0000", number=0,
                                   params={"gamma": 1.0, "budget": "tiny"}, tags={})
    assert store.TAG_FAILURE not in client.get_run(first).data.tags
    assert retried.run_id == first and retried.logged_through == 2
    for it in (1, 2, 3):  # the retry retrains from the start: steps already logged are skipped
        retried.log_iteration({"iteration": it, "loss_target": 9.0 if it < 3 else 1 / 3})
    retried.finish()
    children = store.child_runs(client, experiment_id, parent)
    assert len(children) == 1
    run = children[0]
    assert run.info.run_name == "trial_0000" and run.info.status == "FINISHED"
    assert run.data.params == {"gamma": "1.0", "budget": "tiny"}
    assert run.data.metrics["target_acc"] == 0.7 and run.data.metrics["attacker/c3d_tiny"] == pytest.approx(0.15)
    tags = run.data.tags
    assert tags[store.TAG_SWEEP] == "s1" and tags[store.TAG_TRIAL] == "trial_0000" and tags[store.TAG_FULL_BUDGET] == "true"
    assert tags[store.TAG_VERSION] == "0.1.0" and len(tags[store.TAG_COMMIT]) in (40, len("unknown"))
    history = client.get_metric_history(first, "train/loss_target")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))]
    artifacts = {a.path for a in client.list_artifacts(first)}
    assert {"degrader.pt2", "samples.png", "config.yaml"} <= artifacts


def test_pareto_command_rebuilds_the_report_from_mlflow_alone(where, tmp_path):
    client = store.client(where.tracking_uri)
    experiment_id = store.ensure_experiment(client, "sbu", where.artifact_root)
    parent = store.start_parent(client, experiment_id, "s1", {})
    client.log_param(parent, "profile", "smoke")
    client.log_param(parent, "data_args", "--synthetic")
    client.log_param(parent, "experiment", "sbu")
    runs = [_trial(where, experiment_id, parent, 0, 0.7, 0.3, tmp_path), _trial(where, experiment_id, parent, 1, 0.6, 0.5, tmp_path),
            _trial(where, experiment_id, parent, 2, 0.9, 0.1, tmp_path, full=False)]
    result = CliRunner().invoke(cli, ["pareto", "sbu", "--home", str(where.home)])
    assert result.exit_code == 0, result.output
    assert "over 1 complete full-budget trials" not in result.output and "over 2 complete full-budget trials" in result.output
    assert "trial_0000  70.0 %" in result.output and f"mlflow ui --backend-store-uri {where.tracking_uri}" in result.output
    pareto = {r.info.run_id: r.data.tags.get(store.TAG_PARETO) for r in store.child_runs(client, experiment_id, parent)}
    assert pareto == {runs[0]: "true", runs[1]: "false", runs[2]: "false"}  # the partial-budget run never counts
    artifacts = {a.path for a in client.list_artifacts(parent)} | {a.path for a in client.list_artifacts(parent, "front")}
    assert {"pareto.csv", "pareto.png", "pareto.html", "hypervolume.csv", "front/trial_0000.yaml"} <= artifacts
    assert [m.step for m in client.get_metric_history(parent, "hypervolume")] == [0, 1]
    missing = CliRunner().invoke(cli, ["pareto", "sbu", "--home", str(where.home), "--sweep", "nope"])
    assert missing.exit_code != 0 and "no sweep 'nope' in experiment 'sbu'" in missing.output


def test_redact_hides_passwords():
    assert store.redact("postgresql://me:secret@db:5432/optuna") == "postgresql://me:***@db:5432/optuna"
    assert "secret" not in store.redact("https://me:secret@mlflow.example")


class _FlakyClient:
    """An MLflow client whose server is down while `down` is set (connection refused)."""

    def __init__(self):
        self.down, self.logged, self.terminated = True, [], None

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        import requests

        if self.down:
            raise requests.exceptions.ConnectionError("connection refused")
        self.logged += [(m.key, m.step, m.value) for m in metrics]

    def set_terminated(self, run_id, status):
        self.terminated = status


def test_an_outage_buffers_iterations_without_stopping_and_replays_them_once_in_order():
    client = _FlakyClient()
    run = store.TrialRun(client, "run")
    run.log_iteration({"iteration": 1, "loss_target": 1.0})
    run.log_iteration({"iteration": 2, "loss_target": 0.5})
    assert client.logged == [] and len(run.pending) == 2 and run.outages == 2
    client.down = False
    run.log_iteration({"iteration": 3, "loss_target": 0.25})
    assert client.logged == [("train/loss_target", 1, 1.0), ("train/loss_target", 2, 0.5), ("train/loss_target", 3, 0.25)]
    assert run.pending == []
    run.finish()
    assert client.terminated == "FINISHED"


def test_with_retry_backs_off_then_names_what_it_was_doing():
    import requests

    waits, now = [], [0.0]

    def sleep(s):
        waits.append(s)
        now[0] += s

    def down():
        raise requests.exceptions.ConnectionError("refused")

    with pytest.raises(RuntimeError, match=r"MLflow unreachable for \d+ s while ending the run: ConnectionError"):
        store.with_retry(down, "ending the run", deadline_s=40, sleep=sleep, clock=lambda: now[0])
    assert waits == [1.0, 2.0, 4.0, 8.0, 15.0]
    calls = iter([down, lambda: "ok"])
    assert store.with_retry(lambda: next(calls)(), "x", sleep=sleep, clock=lambda: now[0]) == "ok"


# --- The confirmation stage's records: reuse across sweeps, the published confirmed front ----------

def _plan(where, experiment_id, parent, sweep):
    from raypriv.sweep.config import SweepSettings
    from raypriv.sweep.plan import SweepPlan

    return SweepPlan(sweep_id=sweep, name="sbu", settings=SweepSettings(), synthetic=True, root=None,
                     tracking_uri=where.tracking_uri, experiment_id=experiment_id, parent_run_id=parent,
                     tags={store.TAG_DATA: "synthetic"}, train_storage=str(where.home), use_gpu=False)


def _stage_run(where, experiment_id, parent, spec, target, privacy, folder=None, *, sweep="s1", data="synthetic"):
    """A finished child run of `spec` as a worker would leave it (metrics, tags, files from `folder`)."""
    from raypriv.sweep.plan import spec_digest

    run = store.TrialRun.start(where.tracking_uri, experiment_id, parent, sweep=sweep, trial=spec.name,
                               number=spec.number, params=spec.params,
                               tags={**spec.tags, store.TAG_DIGEST: spec_digest(spec), store.TAG_DATA: data})
    files = [folder / n for n in ("degrader.pt2", "config.yaml")] if folder else []
    run.log_result(_metrics(target, privacy), files, full_budget=True)
    run.finish()
    return run.run_id


def _specs(trials=("trial_0000",)):
    from raypriv.sweep.config import load_sweep_config
    from raypriv.sweep.confirm import confirmation_specs

    cfg = load_sweep_config("search_spaces/sbu.yaml", "smoke", (), {"confirm": 1})
    return {s.name: s for s in confirmation_specs(cfg, [(t, {"M": 2}) for t in trials], synthetic=True)}


def test_control_and_baseline_runs_are_reused_across_sweeps_by_digest_and_data(where):
    from raypriv.sweep.confirm import reuse_cached

    client = store.client(where.tracking_uri)
    experiment_id = store.ensure_experiment(client, "sbu", where.artifact_root)
    specs = _specs()
    first = store.start_parent(client, experiment_id, "s1", {})
    original = _stage_run(where, experiment_id, first, specs["no_game_s0"], 0.8, 0.6)
    _stage_run(where, experiment_id, first, specs["raw_s0"], 0.9, 0.95, data="/data/sbu")  # other data: not reused
    second = store.start_parent(client, experiment_id, "s2", {})
    said = []
    todo = reuse_cached(client, _plan(where, experiment_id, second, "s2"), list(specs.values()), said.append)
    assert [s.name for s in todo] == ["trial_0000_s0", "trial_0000_s1", "no_game_s1", "raw_s0", "raw_s1"]
    (copy,) = store.child_runs(client, experiment_id, second)
    tags = copy.data.tags
    assert copy.info.run_name == "no_game_s0" and copy.info.status == "FINISHED"
    assert tags[store.TAG_CACHED] == original and tags[store.TAG_SWEEP] == "s2" and tags[store.TAG_STAGE] == "control"
    assert tags[store.TAG_SEED] == "0" and tags[store.TAG_ARM] == "no_game" and tags[store.TAG_TRIAL] == "no_game_s0"
    assert copy.data.metrics["privacy_acc"] == 0.6 and copy.data.params == {"arm": "no_game"}
    assert said == [f"no_game_s0: reusing run {original} of sweep s1 (same config digest, control)"]
    # Again (a resume): recorded once. A third sweep reuses the original, never a copy.
    assert len(reuse_cached(client, _plan(where, experiment_id, second, "s2"), list(specs.values()), said.append)) == 5
    assert len(store.child_runs(client, experiment_id, second)) == 1
    third = store.start_parent(client, experiment_id, "s3", {})
    reuse_cached(client, _plan(where, experiment_id, third, "s3"), [specs["no_game_s0"]], said.append)
    assert store.child_runs(client, experiment_id, third)[0].data.tags[store.TAG_CACHED] == original


def test_a_confirmed_front_is_published_described_and_registered(where, tmp_path):
    import torch

    from raypriv.method.export import export_degrader
    from raypriv.method.models import create_model
    from raypriv.sweep.registry import KNEE_ALIAS

    client = store.client(where.tracking_uri)
    experiment_id = store.ensure_experiment(client, "sbu", where.artifact_root)
    parent = store.start_parent(client, experiment_id, "s1", {})
    for key, value in (("profile", "smoke"), ("data_args", "--synthetic"), ("experiment", "sbu")):
        client.log_param(parent, key, value)
    screening = [_trial(where, experiment_id, parent, n, t, p, tmp_path) for n, t, p in [(0, 0.7, 0.3), (1, 0.6, 0.5)]]
    folder = tmp_path / "confirmed"
    folder.mkdir()
    torch.manual_seed(0)
    export_degrader(create_model("degrader", "degrader_tiny").eval(), folder / "degrader.pt2", height=16, width=16)
    (folder / "config.yaml").write_text(yaml.safe_dump(load_run_config("search_spaces/sbu.yaml", "smoke").model_dump(mode="json")))
    specs = _specs(("trial_0000", "trial_0001"))
    runs = {name: _stage_run(where, experiment_id, parent, specs[name], t, p, folder)
            for name, t, p in [("trial_0000_s0", 0.72, 0.31), ("trial_0000_s1", 0.70, 0.33),
                               ("trial_0001_s0", 0.62, 0.52), ("trial_0001_s1", 0.60, 0.50),
                               ("no_game_s0", 0.8, 0.6), ("raw_s0", 0.9, 0.95)]}
    for _ in range(2):  # the second rebuild registers nothing new
        result = CliRunner().invoke(cli, ["pareto", "sbu", "--home", str(where.home)])
        assert result.exit_code == 0, result.output
    assert "Confirmed at the full protocol (mean ± std over seeds):" in result.output
    assert "trial_0000  front, knee  0 1    71.0 ± 1.4 %" in result.output
    assert f"Model Registry: sbu-degrader versions 1 (trial_0000); mlflow.pyfunc.load_model('models:/sbu-degrader@knee') " \
           f"is version 1" in result.output
    assert f"#/experiments/{experiment_id}/runs/{parent}?workflowType=machine_learning" in result.output
    note = client.get_run(parent).data.tags["mlflow.note.content"]
    assert "| trial_0000 | front, knee | 71.0 ± 1.4 % | 32.0 ± 1.4 % |" in note and "| trial_0001 | dominated |" in note
    assert f"[s1](#/experiments/{experiment_id}/runs/{runs['trial_0000_s1']}?workflowType=machine_learning)" in note
    assert f"screening [trial_0000](#/experiments/{experiment_id}/runs/{screening[0]}?workflowType" in note
    assert "| no_game | control | 80.0 % |" in note and "| raw | baseline | 90.0 % |" in note
    assert {"pareto.png", "pareto.html", "pareto.csv"} <= {a.path for a in client.list_artifacts(parent)}
    assert [a.path for a in client.list_artifacts(parent, "front")] == ["front/trial_0000.yaml"]
    assert client.get_run(runs["trial_0000_s1"]).data.tags[store.TAG_PARETO] == "true"
    assert client.get_run(runs["trial_0001_s0"]).data.tags[store.TAG_PARETO] == "false"
    assert client.get_metric_history(parent, "kendall_tau/target_acc")[-1].value == pytest.approx(1.0)
    (version,) = client.search_model_versions("name = 'sbu-degrader'")
    assert version.run_id == runs["trial_0000_s0"] and version.tags[store.TAG_TRIAL] == "trial_0000"
    assert client.get_model_version_by_alias("sbu-degrader", KNEE_ALIAS).version == version.version
