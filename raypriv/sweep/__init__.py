"""Search: a search-space YAML -> Optuna, the Ray Tune driver of a sweep, and one trial's Ray Train worker.

- `space`: the typed space (`raypriv.method.config.SweepConfig.space`) as Optuna distributions and samplers.
- `plan`: what every trial needs to know (`SweepPlan`, `TrialSpec`), the deterministic sweep id,
  and the resource-fit check.
- `driver`: `run_sweep`, embedded or on a cluster: Ray, Optuna's study, MLflow's parent run, the report.
- `cluster`: the cluster inputs checked before a sweep starts (RAY_ADDRESS and token auth, the
  MLflow server, an s3:// Ray storage), each failing in seconds with a message free of secrets.
- `trial`: the Tune function that launches a `TorchTrainer`, and the searcher that numbers trials.
- `worker`: the Ray Train worker that runs `raypriv.method.run.run_training` (or, for a baseline
  trial, one of `raypriv.method.baselines`) and logs the trial's MLflow child run from rank 0.
- `confirm`: a sweep's confirmation stage: the best screening configurations, the control arm and
  the baselines at the full protocol with several seeds, as fixed trials on the same machinery.
- `tracking`: the stores, the MLflow runs, and the report from and to MLflow; `registry`: the
  confirmed front's degraders in the Model Registry (`pyfunc_degrader.py` is the registered models'
  code, which imports nothing from raypriv).

Only `driver`, `trial` and `worker` import Ray, and only the sweep command imports them.
"""
