"""The confirmed front in the MLflow Model Registry: one registered model per experiment
(`<experiment>-degrader`), one version per confirmed front configuration (the degrader.pt2 of its
first replicate, linked to that run and tagged with the sweep and the trial), and the alias `knee`
on the version of the front's knee (`raypriv.report.pareto.knee_index`).

Each version is a pyfunc model "from code" (`pyfunc_degrader.py`), which loads without raypriv:

    model = mlflow.pyfunc.load_model("models:/sbu-degrader@knee")
    degraded = model.predict(frames)  # float32 [N, 3, H, W] in [0, 1] -> [N, C, H, W]

Publishing a report again registers nothing twice: a front point's version is found by its run.
The alias moves to the knee of the sweep published last.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from raypriv.report.confirmed import Replicated, pct
from raypriv.report.front import Report
from raypriv.sweep.tracking import TAG_SWEEP, TAG_TRIAL, scoped_env

MODEL_CODE = Path(__file__).with_name("pyfunc_degrader.py")
KNEE_ALIAS = "knee"
# What a version needs besides mlflow: torch runs the program; the checked loader (a copy of
# raypriv/method/export.py, shipped as the code path `degrader_export.py`) imports numpy, pillow, safetensors.
REQUIREMENTS = ["torch", "numpy", "pillow", "safetensors"]


@dataclass(frozen=True)
class RegisteredFront:
    name: str  # the registered model
    versions: dict[str, str]  # confirmed front configuration -> its version
    knee: str | None  # the version under the alias `knee`
    error: str = ""  # why nothing was registered (the report stands without it)


def registered_model_name(experiment: str) -> str:
    return f"{experiment}-degrader"


def register_front(mlflow_client, report: Report, experiment_id: str) -> RegisteredFront:
    """Register each confirmed front configuration's degrader (once) and point `knee` at the knee's.
    A registry that refuses (e.g. a tracking server without one) is reported in `error`, not raised:
    the sweep's results are in MLflow already."""
    from mlflow.exceptions import MlflowException

    name = registered_model_name(mlflow_client.get_experiment(experiment_id).name)
    try:
        try:
            mlflow_client.create_registered_model(name, description=(
                "Degraders (f_d) of the confirmed Pareto fronts of raypriv sweeps; alias `knee`: the balanced "
                "point of the latest front. Input float32 frames [N, 3, H, W] in [0, 1]."))
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        versions = {g.name: _version(mlflow_client, name, g, report.sweep, experiment_id)
                    for g in report.confirmation.front}
        knee = versions.get(report.confirmation.knee)
        if knee is not None:
            mlflow_client.set_registered_model_alias(name, KNEE_ALIAS, knee)
    except (MlflowException, OSError) as err:
        return RegisteredFront(name, {}, None, error=f"{type(err).__name__}: {str(err).splitlines()[0][:300]}")
    return RegisteredFront(name, versions, knee)


def _version(mlflow_client, name: str, group: Replicated, sweep: str, experiment_id: str) -> str:
    """The version of `group`'s first replicate: found by its run, else logged and registered now."""
    run_id = group.run_ids[0]
    found = mlflow_client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    if found:
        return str(found[0].version)
    import mlflow

    from raypriv.method import export

    seeds = " ".join(map(str, group.summary.seeds))
    description = (f"{group.name} of sweep {sweep}, confirmed over seeds {seeds}: A_T "
                   f"{pct(group.mean('target_acc'), group.std('target_acc'))}, A_B^N "
                   f"{pct(group.mean('privacy_acc'), group.std('privacy_acc'))}; the degrader of seed "
                   f"{group.summary.seeds[0]}'s run.")
    tags = {TAG_SWEEP: sweep, TAG_TRIAL: group.name}
    # MLflow's model logging is its fluent API: it reads the store and the experiment from the
    # environment (registering reads the logged model back through it too).
    with tempfile.TemporaryDirectory(prefix="raypriv-registry-") as tmp, scoped_env(
            MLFLOW_TRACKING_URI=mlflow_client.tracking_uri, MLFLOW_EXPERIMENT_ID=experiment_id,
            MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"):
        degrader = mlflow_client.download_artifacts(run_id, "degrader.pt2", tmp)
        loader = shutil.copy(export.__file__, Path(tmp) / "degrader_export.py")
        with warnings.catch_warnings():  # the signature says what goes in: no input example needed
            warnings.filterwarnings("ignore", message=".*input example was not provided")
            model = mlflow.pyfunc.log_model(name=f"degrader-{group.name}", python_model=str(MODEL_CODE),
                                            artifacts={"degrader": degrader}, code_paths=[loader],
                                            pip_requirements=REQUIREMENTS, signature=_signature(), tags=tags)
        version = mlflow_client.create_model_version(name, model.model_uri, run_id=run_id, model_id=model.model_id,
                                                     tags=tags, description=description)
    return str(version.version)


def _signature():
    """float32 frames [N, 3, H, W] in, [N, C, H, W] out (any batch and frame size)."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3, -1, -1))]),
                          outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, -1, -1))]))
