"""MLflow tracking, the pyfunc model and gated promotion (imports mlflow only when a run is opened).

- ``backend``: tracking URI (``MLFLOW_TRACKING_URI``, else ``sqlite:///<project>/mlflow.db``), fast probe;
- ``run``: one run per dataset × method × bits cell, opened by train, continued by evaluate (``tracking.json``
  travels with the model and the codes), with params, loss terms, metrics, plots and provenance;
- ``pyfunc`` / ``pyfunc_model``: the model logged from code (features → codes, safetensors + JSON weights);
- ``registry``: registered model per cell, the ``champion`` alias moved only past a metric gate, under a lock.
"""

from __future__ import annotations

from pydantic import Field

from tagcode.config import StageConfig


class TrackedConfig(StageConfig):
    """The switch shared by the tracked stages (train, evaluate, promote)."""

    tracking: bool = Field(True, description="log to MLflow (MLFLOW_TRACKING_URI, else sqlite:///<project>/mlflow.db)")
