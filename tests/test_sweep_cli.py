"""`raypriv sweep` from the command line.

Fast tests check the errors raised before Ray starts. The end-to-end test (marked slow: about
1.5 minutes on 2 cores) runs the installed CLI in a subprocess on a real local Ray and a real
sqlite MLflow store with the `smoke` profile (3 trials, 2 at a time), checks every record the
sweep leaves, then rebuilds the report and resumes the finished sweep without duplicating runs.
"""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from raypriv.cli import cli
from sweep_helpers import SWEEP_ENV_VARS, run_raypriv



@pytest.fixture
def clean_env(monkeypatch):
    for name in SWEEP_ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def test_help_lists_every_option():
    out = CliRunner().invoke(cli, ["sweep", "--help"]).output
    for option in ("--synthetic", "--profile", "--trials", "--concurrency", "--workers", "--sampler", "--seed",
                   "--resume", "--home", "--optuna-storage", "--baselines", "[smoke|quick|full]", "[tpe|nsga2|random]"):
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
        (["--resume"], "nothing to resume: no sweep sbu-smoke-tpe-s0-"),
    ]:
        result = CliRunner().invoke(cli, ["sweep", "sbu", "--synthetic", "--profile", "smoke", "--home", str(home), *args])
        assert result.exit_code != 0 and message in result.output, (args, result.output)
    assert not home.exists()


_raypriv = run_raypriv


@pytest.mark.slow
def test_smoke_sweep_end_to_end_on_local_ray_and_sqlite_mlflow(tmp_path):
    import optuna

    from raypriv.sweep import tracking as store

    home = tmp_path / "home"
    run = _raypriv("sweep", "sbu", "--synthetic", "--profile", "smoke", home=home)
    assert run.returncode == 0, run.stdout[-8000:]
    out = run.stdout
    assert "local Ray on 127.0.0.1" in out
    assert "A_T" in out and "A_B^N" in out and "trial_0002" in out  # Tune's table has both objectives
    assert "3 trials, 3 complete (3 COMPLETE in the Optuna study), 0 failed" in out
    assert "Ray + MLflow overhead per trial" in out
    assert f"mlflow ui --backend-store-uri sqlite:///{home}/mlflow.db" in out
    sweep = next(line.split()[1] for line in out.splitlines() if line.startswith("sweep sbu-smoke-"))[:-1]

    where = store.locations(home)
    client = store.client(where.tracking_uri)
    experiment = client.get_experiment_by_name("sbu")
    assert experiment.artifact_location == (home / "mlartifacts" / "sbu").as_uri()
    parents = client.search_runs([experiment.experiment_id], f"tags.`{store.TAG_ROLE}` = 'sweep'")
    assert len(parents) == 1 and parents[0].data.tags[store.TAG_SWEEP] == sweep
    parent = parents[0].info.run_id
    assert parents[0].info.status == "FINISHED" and parents[0].info.run_name == sweep
    parent_files = {a.path for a in client.list_artifacts(parent)}
    assert {"pareto.csv", "pareto.png", "pareto.html", "hypervolume.csv", "front", "space.yaml"} <= parent_files
    assert client.list_artifacts(parent, "front")
    assert len(client.get_metric_history(parent, "trial_overhead_seconds")) == 3

    children = store.child_runs(client, experiment.experiment_id, parent)
    assert sorted(r.info.run_name for r in children) == ["trial_0000", "trial_0001", "trial_0002"]
    for child in children:
        m, tags = child.data.metrics, child.data.tags
        assert child.info.status == "FINISHED"
        for key in ("target_acc", "target_acc_fresh", "privacy_acc", "attacker/plaincnn_d3_w32", "attacker/c3d_tiny"):
            assert 0.0 <= m[key] <= 1.0, key
        assert set(child.data.params) == {"gamma", "M", "budget", "restart_every", "alpha", "lr_degrader",
                                          "lr_target", "lr_budget", "models.degrader"}
        assert [h.step for h in client.get_metric_history(child.info.run_id, "train/loss_target")] == [1, 2, 3, 4]
        assert {"degrader.pt2", "samples.png", "metrics.json", "config.yaml"} <= {a.path for a in client.list_artifacts(child.info.run_id)}
        assert tags[store.TAG_SWEEP] == sweep and tags[store.TAG_TRIAL] == child.info.run_name
        assert tags[store.TAG_VERSION] == "0.1.0" and tags[store.TAG_COMMIT]
        assert tags[store.TAG_FULL_BUDGET] == "true" and tags[store.TAG_PARETO] in ("true", "false")
    assert any(c.data.tags[store.TAG_PARETO] == "true" for c in children)

    study = optuna.load_study(study_name=sweep, storage=where.optuna_storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == len(children) == 3
    assert sorted(t.number for t in complete) == [0, 1, 2]

    # The same sweep again is refused; --resume of the finished sweep adds no run.
    again = _raypriv("sweep", "sbu", "--synthetic", "--profile", "smoke", home=home)
    assert again.returncode != 0 and "already exists" in again.stdout and "--resume" in again.stdout
    resumed = _raypriv("sweep", "sbu", "--synthetic", "--profile", "smoke", "--resume", home=home)
    assert resumed.returncode == 0, resumed.stdout[-8000:]
    assert len(store.child_runs(client, experiment.experiment_id, parent)) == 3
    assert len(client.search_runs([experiment.experiment_id], f"tags.`{store.TAG_ROLE}` = 'sweep'")) == 1


@pytest.mark.slow
def test_trials_that_do_not_fit_the_cluster_fail_clearly(tmp_path):
    run = _raypriv("sweep", "sbu", "--synthetic", "--profile", "smoke", "--concurrency", "512", home=tmp_path / "h", timeout=180)
    assert run.returncode != 0 and "Traceback" not in run.stdout
    assert re.search(r"--concurrency 512 x 1 CPUs per trial = 512 CPUs, but the cluster has \d+; trials beyond that "
                     r"would wait forever for their Train workers. Use --concurrency \d+", run.stdout), run.stdout[-3000:]
    assert not (tmp_path / "h" / "mlflow.db").exists()  # checked before MLflow or Optuna were touched
