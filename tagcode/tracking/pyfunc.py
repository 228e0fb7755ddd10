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


def codes_array(codes: Any, view: str = "") -> np.ndarray:
    """One view of a code container: by default its codes (packed bits or quantizer codes, uint8; float
    vectors for float methods), else the named view (``bits``, ``codes``, ``x``: the float embedding)."""
    from tagcode.retrieval.codes import views

    available = views(codes)
    if not view:
        view = next(v for v in ("bits", "codes", "x") if v in available)
    if view not in available:
        raise TagcodeError(f"no view {view!r} in these codes; available: {', '.join(sorted(available))}")
    return available[view]


def predict_codes(method: Any, model_input: Any, side: str = "database", view: str = "") -> np.ndarray:
    """Encode inputs (feature rows, or images for end-to-end methods) on the database or query side and
    return one view of the codes (see :func:`codes_array`)."""
    if side not in SIDES:
        raise TagcodeError(f"side must be one of {', '.join(SIDES)}, got {side!r}")
    x = np.asarray(model_input.to_numpy() if hasattr(model_input, "to_numpy") else model_input)
    if method.input == "features":
        x = x.astype(np.float32, copy=False)
    ids = np.arange(len(x)).astype(str)
    codes = method.encode(x, ids) if side == "database" else method.encode_query(x, ids)
    return codes_array(codes, view)


def requirements() -> list[str]:
    """Pinned runtime requirements of the served model (torch only when the method loaded it)."""
    dists = RUNTIME + (("torch",) if "torch" in sys.modules else ())
    return [f"{d}=={importlib.metadata.version(d).split('+')[0]}" for d in dists]


def log_codes_model(run_id: str, model_dir: str | Path, example: np.ndarray) -> str:
    """Log ``model_dir`` (a saved method) as the run's pyfunc ``model`` with a signature (features → database
    codes; params ``side`` and ``view``) and ``example`` as input example; returns the logged model's URI."""
    import mlflow
    from mlflow.models import infer_signature

    from tagcode.methods import load_method

    method = load_method(model_dir)
    example = np.ascontiguousarray(example)
    signature = infer_signature(example, predict_codes(method, example), params={"side": "database", "view": ""})
    with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Add type hints", UserWarning)  # predict is untyped on purpose
        info = mlflow.pyfunc.log_model(name="model", python_model=str(MODEL_CODE),
                                       artifacts={"method": str(model_dir)}, signature=signature,
                                       input_example=example, pip_requirements=requirements())
    return info.model_uri
