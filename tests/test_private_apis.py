"""The library internals raypriv depends on (docs/design.md, "Private APIs"), each checked here so an
upgrade that changes them fails loudly instead of silently undoing what raypriv relies on."""

from __future__ import annotations

import math


def test_tune_still_copies_aws_credentials_into_trial_runtime_envs_and_raypriv_stops_it():
    from ray.tune.execution import class_cache

    from raypriv.sweep.driver import _keep_credentials_out_of_runtime_envs

    before = set(class_cache.ENV_VARS_TO_PROPAGATE)
    try:
        # If Ray stops propagating these (or renames the set), the patch is dead code: remove it.
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} <= before
        _keep_credentials_out_of_runtime_envs()
        assert not {n for n in class_cache.ENV_VARS_TO_PROPAGATE if n.startswith("AWS_")}
        assert before - class_cache.ENV_VARS_TO_PROPAGATE == {n for n in before if n.startswith("AWS_")}
    finally:
        class_cache.ENV_VARS_TO_PROPAGATE = before


def test_the_gcs_probe_of_the_ray_address_check_finds_its_client():
    # raypriv.sweep.preflight probes RAY_ADDRESS in a child process with Ray's GCS client
    from ray._raylet import GcsClient  # noqa: F401


def test_optuna_search_hands_the_optuna_trial_number_to_the_tune_config():
    """Public, documented behaviour (a define-by-run space may return constants); checked because the
    trial names of a sweep, its Ray Train runs and its MLflow child runs rest on it."""
    import optuna

    from raypriv.sweep.space import to_optuna
    from raypriv.sweep.trial import TRIAL_NUMBER, FailingOptunaSearch, OptunaSpace
    from raypriv.sweep.config import load_sweep_config

    cfg = load_sweep_config("search_spaces/sbu.yaml", "smoke")
    searcher = FailingOptunaSearch(space=OptunaSpace(to_optuna(cfg.space)), metric=["target_acc", "privacy_acc"],
                                   mode=["max", "min"], sampler=optuna.samplers.RandomSampler(seed=0))
    first, second = searcher.suggest("a"), searcher.suggest("b")
    assert (first[TRIAL_NUMBER], second[TRIAL_NUMBER]) == (0, 1)
    assert set(first) == set(cfg.space) | {TRIAL_NUMBER}  # flat names, as `apply_params` takes them
    searcher.on_trial_complete("a", {"target_acc": math.nan, "privacy_acc": 0.5})  # diverged -> FAIL
    searcher.on_trial_complete("b", {"target_acc": 0.7, "privacy_acc": 0.5})
    states = [t.state.name for t in searcher._ot_study.trials]  # the test may look inside; raypriv does not
    assert states == ["FAIL", "COMPLETE"]
