"""The MLflow "model from code" for every tagcode method (logged by path, so nothing is cloudpickled).

MLflow copies this file into the model; at load time it imports tagcode and reads the method's saved
directory (``config.json`` + ``arrays.safetensors``), logged as the artifact ``method``. ``predict`` turns
backbone features (n, d) into the codes ``tagcode encode`` writes for the database side (packed bits,
quantizer codes or float vectors); ``params={"side": "query"}`` encodes the query side, and ``view`` picks
another array of the codes (``x``: the float embedding an asymmetric search takes as query).
"""

from __future__ import annotations

from typing import Any

import mlflow
from mlflow.pyfunc import PythonModel


class CodesModel(PythonModel):
    """Features in, codes out, through the saved tagcode method."""

    def load_context(self, context: Any) -> None:
        """Load the method from the logged ``method`` directory."""
        from tagcode.methods import load_method

        self.method = load_method(context.artifacts["method"])

    def predict(self, context, model_input, params=None):
        """Codes for each row of ``model_input`` (array or DataFrame of features); no type hints, which MLflow
        would read as a schema of its own."""
        from tagcode.tracking.pyfunc import predict_codes

        params = params or {}
        return predict_codes(self.method, model_input, params.get("side", "database"), params.get("view", ""))


mlflow.models.set_model(CodesModel())
