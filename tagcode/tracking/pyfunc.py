"""Log a trained method as an MLflow pyfunc (``pyfunc_model.py`` from code, the saved directory as artifact).

The logged model holds no pickle: the code is this package's ``pyfunc_model.py`` and the weights are the
method's safetensors + JSON. Serving needs tagcode installed (the pipeline's image, or ``--env-manager
local`` in the project's environment); the pinned requirements list the rest.
"""

from __future__ import annotations

import importlib.metadata
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tagcode.errors import TagcodeError

MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
SIDES = ("database", "query")
RUNTIME = ("mlflow", "numpy", "pandas", "safetensors", "faiss-cpu", "pydantic", "scipy")


def codes_array(codes: Any) -> np.ndarray:
    """The array a code container holds: packed bits (uint8), quantizer codes (uint8) or float vectors."""
    kind = type(codes).__name__
    if kind == "BinaryCodes":
        return codes.bits
    if kind == "QuantizedCodes":
        return codes.codes
    return codes.x


def predict_codes(method: Any, model_input: Any, side: str) -> np.ndarray:
    """Encode feature rows with ``method`` on the database or query side."""
    if side not in SIDES:
        raise TagcodeError(f"side must be one of {', '.join(SIDES)}, got {side!r}")
    x = np.asarray(model_input.to_numpy() if hasattr(model_input, "to_numpy") else model_input, dtype=np.float32)
    ids = np.arange(len(x)).astype(str)
    codes = method.encode(x, ids) if side == "database" else method.encode_query(x, ids)
    return codes_array(codes)


def requirements() -> list[str]:
    """Pinned runtime requirements of the served model (torch only when the method loaded it)."""
    dists = RUNTIME + (("torch",) if "torch" in sys.modules else ())
    return [f"{d}=={importlib.metadata.version(d).split('+')[0]}" for d in dists]


def log_codes_model(run_id: str, model_dir: str | Path, example: np.ndarray) -> str:
    """Log ``model_dir`` (a saved method) as the run's pyfunc ``model`` with a signature (features → database
    codes, param ``side``) and ``example`` as input example; returns the logged model's URI."""
    import mlflow
    from mlflow.models import infer_signature

    from tagcode.methods import load_method

    method = load_method(model_dir)
    example = np.ascontiguousarray(example, dtype=np.float32)
    signature = infer_signature(example, predict_codes(method, example, "database"), params={"side": "database"})
    with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Add type hints", UserWarning)  # predict is untyped on purpose
        info = mlflow.pyfunc.log_model(name="model", python_model=str(MODEL_CODE),
                                       artifacts={"method": str(model_dir)}, signature=signature,
                                       input_example=example, pip_requirements=requirements())
    return info.model_uri
