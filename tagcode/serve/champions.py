"""Loading a champion: a trained method with its database codes, query codes and faiss index.

Two sources:

- the MLflow registry, by name: ``models:/<name>@champion`` (or just the registered name, e.g.
  ``tagcode-openclipart-wsdhq-32``). The logged model holds the method's saved directory (the pyfunc
  artifact ``method``, see ``tagcode.tracking.pyfunc``); the database and queries of the prepared split are
  encoded with it at start-up, from the features (or the image cache for end-to-end methods), so the codes
  are the champion's own;
- a model directory written by ``tagcode train`` (``models/<method>-<bits>``) with the codes directory
  ``tagcode encode`` wrote for it (``codes/<method>-<bits>``: ``database/``, ``query/``, ``index.faiss``),
  for runs with tracking off, such as the demo.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tagcode.errors import TagcodeError
from tagcode.io import read_json
from tagcode.methods.base import Method, load_method
from tagcode.retrieval.codes import Codes, load_codes
from tagcode.retrieval.index import read_index, to_faiss_index

REGISTRY_SCHEME = "models:/"
ALIAS_SUFFIX = "@champion"


@dataclass
class Champion:
    """One servable model: ``key`` (``<label>-<bits>``, what the page switches between), where it came from,
    the method, its codes and the faiss index over the database codes (rows in ``database.ids`` order)."""

    key: str
    source: str
    method: Method
    database: Codes
    queries: Codes
    index: Any

    def __post_init__(self) -> None:
        if self.index.ntotal != len(self.database.ids):
            raise TagcodeError(f"{self.source}: the faiss index holds {self.index.ntotal} codes but the database "
                               f"{len(self.database.ids)}; re-run `tagcode encode`")
        self.database_row = {str(i): k for k, i in enumerate(self.database.ids)}
        self.query_row = {str(i): k for k, i in enumerate(self.queries.ids)}


def is_registry_ref(ref: str) -> bool:
    """True for ``models:/...`` URIs and bare registered names (``tagcode-...``, no path separator)."""
    from tagcode.tracking.registry import PREFIX

    return ref.startswith(REGISTRY_SCHEME) or (ref.startswith(PREFIX) and "/" not in ref and not Path(ref).exists())


def from_directory(model_dir: str | Path, codes_dir: str | Path) -> Champion:
    """A champion from ``tagcode train``'s model directory and ``tagcode encode``'s codes directory; codes of
    another model (method or bits differ from the codes' meta.json) are a one-line error."""
    method = load_method(model_dir)
    codes_dir = Path(codes_dir)
    meta_path = codes_dir / "meta.json"
    if not meta_path.is_file():
        raise TagcodeError(f"{codes_dir}: no codes here for {model_dir} (run `tagcode encode --model {model_dir} "
                           f"--out {codes_dir}`)")
    meta = read_json(meta_path)
    if (meta.get("method"), meta.get("bits")) != (method.label, method.bits):
        raise TagcodeError(f"{codes_dir}: codes of {meta.get('method')} {meta.get('bits')} bits, but {model_dir} "
                           f"holds {method.label} {method.bits} bits")
    return Champion(key=f"{method.label}-{method.bits}", source=str(model_dir), method=method,
                    database=load_codes(codes_dir / "database"), queries=load_codes(codes_dir / "query"),
                    index=read_index(codes_dir / "index.faiss"))


def from_registry(ref: str, prepared: str | Path, features: str | Path) -> Champion:
    """A champion from the MLflow registry (``MLFLOW_TRACKING_URI``, else the project's store): the model the
    ``champion`` alias points to, with the prepared split's database and queries encoded by it."""
    import mlflow

    from tagcode.data.cache import ImageCache
    from tagcode.data.features import features_for
    from tagcode.data.manifest import read_manifest
    from tagcode.tracking.backend import connect, mlflow_errors, probe, tracking_uri

    uri = ref if ref.startswith(REGISTRY_SCHEME) else f"{REGISTRY_SCHEME}{ref}{ALIAS_SUFFIX}"
    store = tracking_uri()
    probe(store)
    connect(store)
    with tempfile.TemporaryDirectory(prefix="tagcode-serve-") as tmp, mlflow_errors(store):
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        artifacts = mlflow.models.Model.load(local).flavors.get("python_function", {}).get("artifacts", {})
        if "method" not in artifacts:
            raise TagcodeError(f"{uri}: not a tagcode model (no 'method' artifact in its MLmodel)")
        method = load_method(local / artifacts["method"]["path"])
    manifest = read_manifest(Path(prepared) / "manifest.parquet")
    db_ids, q_ids = manifest.ids_of("database"), manifest.ids_of("query")
    if method.input == "images":
        cache = ImageCache(Path(prepared) / "images")
        x_db, x_q = cache.view(db_ids), cache.view(q_ids)
    else:
        x_db, x_q = features_for(features, db_ids, q_ids)
    database = method.encode(x_db, np.asarray(db_ids))
    return Champion(key=f"{method.label}-{method.bits}", source=uri, method=method, database=database,
                    queries=method.encode_query(x_q, np.asarray(q_ids)), index=to_faiss_index(database))


def load_champion(ref: str, *, codes_root: str | Path = "codes", prepared: str | Path = "data/prepared",
                  features: str | Path = "data/features") -> Champion:
    """A champion from a registry reference or a model directory (its codes in ``codes_root/<dir name>``)."""
    if is_registry_ref(ref):
        return from_registry(ref, prepared, features)
    return from_directory(ref, Path(codes_root) / Path(ref).name)
