"""`raypriv sweep ucf101-vispr` end to end (marked slow: a local Ray, a sqlite MLflow store, the
smoke profile with 2 trials): the child runs carry the privacy cMAP under an MLflow experiment named
for the data sets."""

from __future__ import annotations

import pytest

from sweep_helpers import run_raypriv


@pytest.mark.slow
def test_smoke_sweep_logs_cmap_child_runs_under_the_data_sets_experiment(tmp_path):
    from raypriv.sweep import tracking as store

    home = tmp_path / "home"
    run = run_raypriv("sweep", "ucf101-vispr", "--synthetic", "--profile", "smoke", "--trials", "2", home=home)
    assert run.returncode == 0, run.stdout[-8000:]
    assert "2 trials, 2 complete" in run.stdout

    client = store.client(store.locations(home).tracking_uri)
    experiment = client.get_experiment_by_name("ucf101-vispr")
    assert experiment is not None
    parents = client.search_runs([experiment.experiment_id], f"tags.`{store.TAG_ROLE}` = 'sweep'")
    assert len(parents) == 1
    children = store.child_runs(client, experiment.experiment_id, parents[0].info.run_id)
    assert len(children) == 2
    for child in children:
        metrics = child.data.metrics
        assert child.info.status == "FINISHED"
        assert 0.0 <= metrics["privacy_cmap"] <= 1.0
        assert metrics["privacy_acc"] == metrics["privacy_cmap"]  # the sweep's objective is the cMAP here
        assert 0.0 < metrics["chance_privacy"] < 1.0 and 0.0 <= metrics["target_acc"] <= 1.0
        assert "attacker/plaincnn_d3_w32" in metrics
    # The report names its privacy score for what it is: the attackers' best attribute cMAP.
    note = client.get_run(parents[0].info.run_id).data.tags["mlflow.note.content"]
    assert "| cMAP^N |" in note and "A_B^N" not in note
    (page,) = (home / "reports").glob("*/pareto.html")
    assert "cMAP^N: best fresh attacker's attribute cMAP" in page.read_text()
