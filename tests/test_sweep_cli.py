"""`raypriv sweep` from the command line.

Fast tests check the errors raised before Ray starts. The end-to-end test (marked slow: about 4-5
minutes on 2 cores) runs the installed CLI in a subprocess on a real local Ray and a real sqlite
MLflow store with the `smoke` profile (3 screening trials, 2 at a time, then a confirmation stage of
2 configurations x 2 seeds, the control and a baseline), kills it in the confirmation stage and
resumes it, checks every record the sweep leaves, loads the registered knee degrader without
raypriv, then resumes the finished sweep without duplicating runs.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from raypriv.cli import cli
from sweep_helpers import SWEEP_ENV_VARS, finish, kill_session, run_raypriv, start_raypriv, store_ready



@pytest.fixture
def clean_env(monkeypatch):
    for name in SWEEP_ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def test_help_lists_every_option():
    out = CliRunner().invoke(cli, ["sweep", "--help"]).output
    for option in ("--synthetic", "--profile", "--trials", "--concurrency", "--workers", "--sampler", "--seed",
                   "--confirm", "--replicates", "--resume", "--home", "--optuna-storage", "--baselines",
                   "[smoke|quick|full]", "[tpe|nsga2|random]"):
        assert option in out


def test_without_synthetic_and_without_data_says_where_and_suggests_synthetic(tmp_path, clean_env):
    missing = tmp_path / "nowhere"
    result = CliRunner().invoke(cli, ["sweep", "sbu", "--profile", "smoke", "--root", str(missing), "--home", str(tmp_path / "h")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert str(missing) in result.output and "--synthetic" in result.output
    assert not (tmp_path / "h").exists()  # nothing started, nothing written


def test_bad_values_fail_before_anything_starts(tmp_path, clean_env):
    home = tmp_path / "h"
    for args, message in [
        (["--set", "budget.cout=3"], "budget.cout: Extra inputs are not permitted"),
        (["--workers", "0"], "Invalid value for '--workers'"),
        (["--sampler", "cmaes"], "Invalid value for '--sampler'"),
        (["--replicates", "0"], "Invalid value for '--replicates'"),
        (["--confirm", "1", "--set", "evaluation.attackers=[smallcnn_tiny]"], "evaluation.attackers ['smallcnn_tiny']"),
        (["--resume"], "nothing to resume: no sweep sbu-smoke-tpe-s0-"),
    ]:
        result = CliRunner().invoke(cli, ["sweep", "sbu", "--synthetic", "--profile", "smoke", "--home", str(home), *args])
        assert result.exit_code != 0 and message in result.output, (args, result.output)
    assert not home.exists()


_raypriv = run_raypriv


SMOKE = ("sweep", "sbu", "--synthetic", "--profile", "smoke", "--trials", "3", "--concurrency", "2", "--confirm", "2",
         "--replicates", "2")
STAGES = ("confirm", "control", "baseline")


def _children(home):
    """(client, experiment, parent run or None, child runs) of the one sweep in `home`'s store."""
    from raypriv.sweep import tracking as store

    client = store.client(store.locations(home).tracking_uri)
    experiment = client.get_experiment_by_name("sbu")
    parents = client.search_runs([experiment.experiment_id], f"tags.`{store.TAG_ROLE}` = 'sweep'") if experiment else []
    children = store.child_runs(client, experiment.experiment_id, parents[0].info.run_id) if parents else []
    return client, experiment, parents[0] if parents else None, children


def _stage(run) -> str:
    return run.data.tags.get("raypriv.stage", "")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to kill the driver's session")
def test_smoke_sweep_with_confirmation_end_to_end_killed_in_the_confirmation_stage_and_resumed(tmp_path):
    """The acceptance command on a real local Ray and sqlite MLflow: 3 screening trials, then 2
    configurations x 2 seeds, the no_game control and the raw baseline at the full protocol. The driver
    is killed (SIGKILL of its session) once two confirmation-stage runs finished; --resume finishes
    the stage from its own Tune experiment without running those again. About 4-5 minutes on 2 cores."""
    import optuna

    from raypriv.sweep import tracking as store

    home = tmp_path / "home"
    proc = start_raypriv(*SMOKE, home=home)
    deadline = time.time() + 420
    while time.time() < deadline and proc.poll() is None:
        if store_ready(home):
            _, _, _, children = _children(home)
            if sum(_stage(c) in STAGES and c.info.status == "FINISHED" for c in children) >= 2:
                break
        time.sleep(2)
    assert proc.poll() is None, "the sweep ended before its confirmation stage could be interrupted"
    kill_session(proc.pid)
    killed_output, _ = proc.communicate()
    _, _, _, before = _children(home)
    finished = {c.info.run_name: c.info.start_time for c in before if _stage(c) in STAGES and c.info.status == "FINISHED"}

    run = finish(start_raypriv(*SMOKE, "--resume", home=home), SMOKE, timeout=600)
    assert run.returncode == 0, run.stdout[-8000:]
    out = run.stdout
    assert "local Ray on 127.0.0.1" in out
    tables = killed_output + out
    assert "A_T" in tables and "A_B^N" in tables and "trial_0002" in tables  # Tune's table has both objectives
    assert "3 trials, 3 complete (3 COMPLETE in the Optuna study), 0 failed" in out
    assert "Ray + MLflow overhead per screening trial" in out and "Ray + MLflow overhead per confirmation trial" in out
    assert re.search(r"wall time per stage: setup \d+ s, screen \d+ s, confirm \d+ s, report \d+ s", out)
    sweep = next(line.split()[1] for line in out.splitlines() if line.startswith("sweep sbu-smoke-"))[:-1]
    assert f"resuming the Tune experiment at {home}/ray/tune/{sweep}-confirm" in out  # the stage resumed on its own
    assert f"mlflow ui --backend-store-uri sqlite:///{home}/mlflow.db" in out
    assert "Confirmed at the full protocol (mean ± std over seeds):" in out and "Kendall τ over 2 configurations" in out

    where = store.locations(home)
    client, experiment, parent_run, children = _children(home)
    assert experiment.artifact_location == (home / "mlartifacts" / "sbu").as_uri()
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    parents = client.search_runs([experiment.experiment_id], f"tags.`{store.TAG_ROLE}` = 'sweep'")
    assert len(parents) == 1 and parents[0].data.tags[store.TAG_SWEEP] == sweep
    parent = parent_run.info.run_id
    assert parent_run.info.status == "FINISHED" and parent_run.info.run_name == sweep
    assert f"#/experiments/{experiment.experiment_id}/runs/{parent}?workflowType=machine_learning" in out
    parent_files = {a.path for a in client.list_artifacts(parent)}
    assert {"pareto.csv", "pareto.png", "pareto.html", "hypervolume.csv", "front", "space.yaml",
            "confirm_config.yaml"} <= parent_files
    assert client.list_artifacts(parent, "front")
    assert len(client.get_metric_history(parent, "trial_overhead_seconds")) == 3
    assert len({m.step for m in client.get_metric_history(parent, "confirm/trial_overhead_seconds")}) == 8
    assert {"stage_seconds/screen", "stage_seconds/confirm"} <= set(parent_run.data.metrics)

    # Children: 3 screening trials, 2 configurations x 2 seeds, the control and the baseline at both seeds.
    by_stage = {stage: sorted(c.info.run_name for c in children if _stage(c) == stage)
                for stage in ("screen", *STAGES)}
    assert by_stage["screen"] == ["trial_0000", "trial_0001", "trial_0002"]
    assert len(by_stage["confirm"]) == 4 and by_stage["control"] == ["no_game_s0", "no_game_s1"]
    assert by_stage["baseline"] == ["raw_s0", "raw_s1"] and len(children) == 11
    confirmed = {c.data.tags[store.TAG_CONFIRMS] for c in children if _stage(c) == "confirm"}
    assert len(confirmed) == 2 and confirmed <= set(by_stage["screen"])
    assert {c.data.tags[store.TAG_SEED] for c in children if _stage(c) == "confirm"} == {"0", "1"}
    for child in children:
        m, tags = child.data.metrics, child.data.tags
        assert child.info.status == "FINISHED"
        for key in ("target_acc", "target_acc_fresh", "privacy_acc", "attacker/plaincnn_d3_w32", "attacker/c3d_tiny"):
            assert 0.0 <= m[key] <= 1.0, key
        assert tags[store.TAG_SWEEP] == sweep and tags[store.TAG_TRIAL] == child.info.run_name
        assert tags[store.TAG_VERSION] == "0.1.0" and tags[store.TAG_COMMIT] and tags[store.TAG_FULL_BUDGET] == "true"
        files = {a.path for a in client.list_artifacts(child.info.run_id)}
        if _stage(child) in ("screen", "confirm"):
            assert set(child.data.params) == {"gamma", "M", "budget", "restart_every", "alpha", "lr_degrader",
                                              "lr_target", "lr_budget", "models.degrader"}
            assert [h.step for h in client.get_metric_history(child.info.run_id, "train/loss_target")] == [1, 2, 3, 4]
            assert {"degrader.pt2", "samples.png", "metrics.json", "config.yaml"} <= files
            assert tags[store.TAG_PARETO] in ("true", "false")
        else:
            assert {"metrics.json", "config.yaml"} <= files
        if child.info.run_name in finished:  # finished before the kill: not run again
            assert child.info.start_time == finished[child.info.run_name]
    screening = [c for c in children if _stage(c) == "screen"]
    assert any(c.data.tags[store.TAG_PARETO] == "true" for c in screening)

    # Optuna saw the screening trials only.
    study = optuna.load_study(study_name=sweep, storage=where.optuna_storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(study.trials) == len(complete) == 3 and sorted(t.number for t in complete) == [0, 1, 2]

    # The report: pareto.csv with stages and std columns, the description lists the confirmed front.
    rows = list(csv.DictReader(open(client.download_artifacts(parent, "pareto.csv", str(tmp_path)))))
    assert {"stage", "seeds", "target_acc_mean", "target_acc_std", "privacy_acc_std"} <= set(rows[0])
    assert [r["stage"] for r in rows] == ["screen"] * 3 + ["confirm"] * 2 + ["control", "baseline"]
    front = [r["trial"] for r in rows if r["stage"] == "confirm" and r["on_front"] == "true"]
    note = client.get_run(parent).data.tags["mlflow.note.content"]
    assert front and all(f"| {trial} | front" in note for trial in front) and "| no_game | control |" in note

    # The confirmed front's degraders in the Model Registry; the knee loads and runs without raypriv.
    versions = client.search_model_versions("name = 'sbu-degrader'")
    assert len(versions) == len(front) and client.get_model_version_by_alias("sbu-degrader", "knee")
    probe = ("import sys; sys.modules['raypriv'] = None\n"  # any import of raypriv fails
             "import mlflow, numpy as np\n"
             "model = mlflow.pyfunc.load_model('models:/sbu-degrader@knee')\n"
             "out = model.predict(np.random.default_rng(0).random((2, 3, 16, 16), dtype=np.float32))\n"
             "print('degraded', out.shape, out.dtype)\n")
    loaded = subprocess.run([sys.executable, "-I", "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "MLFLOW_TRACKING_URI": where.tracking_uri}, timeout=300)
    assert loaded.returncode == 0 and re.search(r"degraded \(2, \d, 16, 16\) float32", loaded.stdout), loaded.stderr[-3000:]

    # The same sweep again is refused before anything starts. (A finished sweep resumed adds no run:
    # test_cluster_integration.py, the same job submitted twice; a report rebuilt twice registers
    # no second version: test_tracking_store.py.)
    again = _raypriv(*SMOKE, home=home)
    assert again.returncode != 0 and "already exists" in again.stdout and "--resume" in again.stdout
    assert len(store.child_runs(client, experiment.experiment_id, parent)) == 11


@pytest.mark.slow
def test_trials_that_do_not_fit_the_cluster_fail_clearly(tmp_path):
    run = _raypriv("sweep", "sbu", "--synthetic", "--profile", "smoke", "--concurrency", "512", home=tmp_path / "h", timeout=180)
    assert run.returncode != 0 and "Traceback" not in run.stdout
    assert re.search(r"--concurrency 512 x 1 CPUs per trial = 512 CPUs, but the cluster has \d+; trials beyond that "
                     r"would wait forever for their Train workers. Use --concurrency \d+", run.stdout), run.stdout[-3000:]
    assert not (tmp_path / "h" / "mlflow.db").exists()  # checked before MLflow or Optuna were touched
