"""An exported degrader (f_d, `degrader.pt2`) as an MLflow pyfunc model "from code".

MLflow copies this file into every registered version of a sweep's confirmed front
(`raypriv.sweep.registry`) and runs it when the model is loaded, so it imports nothing from
raypriv: it needs mlflow, numpy and torch. The exported program is loaded by the model's own copy of
`raypriv/method/export.py` (shipped in the model as the code path `degrader_export.py`), whose
`load_degrader` checks the archive before torch reads it: `torch.export.load` of a crafted file runs
arbitrary code.

Input: float32 frames `[N, 3, H, W]` in [0, 1]; output: f_d(frames) `[N, C, H, W]`.
"""

import mlflow
import numpy as np
import torch


class Degrader(mlflow.pyfunc.PythonModel):
    # No type hints on predict: MLflow's type-hint validation knows no numpy arrays (it warns that
    # they are missing); the model's signature, a float32 tensor spec, says what goes in.
    def load_context(self, context):
        import degrader_export  # the model's code path (see the module docstring), on sys.path once loaded

        self.module = degrader_export.load_degrader(context.artifacts["degrader"])

    def predict(self, context, model_input, params=None):
        frames = torch.from_numpy(np.ascontiguousarray(model_input, dtype=np.float32))
        with torch.no_grad():
            return self.module(frames).numpy()


mlflow.models.set_model(Degrader())
