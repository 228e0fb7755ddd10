"""Where runs go: the tracking URI, a fast reachability probe, and the experiment (with a local artifact root).

``MLFLOW_TRACKING_URI`` wins; otherwise runs go to ``sqlite:///<project>/mlflow.db``, where the project is
the nearest directory above the working directory holding ``dvc.yaml`` (else the source checkout tagcode is
imported from). A client-written store keeps artifacts in ``mlartifacts`` beside its SQLite file. A server
that does not answer is a one-line error raised before any work starts.
"""

from __future__ import annotations

import contextlib
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tagcode.errors import TagcodeError, one_line

ENV_URI = "MLFLOW_TRACKING_URI"
PROBE_TIMEOUT_S = 3.0


def project_root() -> Path:
    """The project directory: nearest ``dvc.yaml`` above the working directory, else tagcode's checkout."""
    cwd = Path.cwd().resolve()
    for d in (cwd, *cwd.parents):
        if (d / "dvc.yaml").is_file():
            return d
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():
        return checkout
    raise TagcodeError(f"no project directory (dvc.yaml) above {cwd}; set {ENV_URI} or turn tracking off")


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the project's SQLite file (never the caller's CWD)."""
    uri = os.environ.get(ENV_URI, "").strip()
    return uri or f"sqlite:///{project_root() / 'mlflow.db'}"


def is_local_store(uri: str) -> bool:
    """True for a database URI the client writes itself (SQLite, PostgreSQL, ...), not an MLflow server."""
    return urlparse(uri).scheme not in {"http", "https", "databricks"}


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def artifact_root(uri: str) -> str | None:
    """Where a client-written store keeps artifacts: ``mlartifacts`` beside the SQLite file, or in the project
    for another database; None for a server, which decides itself (e.g. proxied S3)."""
    if not is_local_store(uri):
        return None
    db = sqlite_path(uri)
    return ((db.parent if db is not None else project_root()) / "mlartifacts").as_uri()


def probe(uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Fail fast with one line when the tracking store cannot be reached (HTTP ``/health``, a database's
    port, or the SQLite file's directory); called before any training starts."""
    parsed = urlparse(uri)
    hint = f"start it, point {ENV_URI} elsewhere, or run with --tracking false"
    if parsed.scheme in {"http", "https"}:
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:
                if resp.status != 200:
                    raise TagcodeError(f"MLflow server {uri} is not healthy (HTTP {resp.status}); {hint}")
        except urllib.error.HTTPError as exc:
            raise TagcodeError(f"MLflow server {uri} is not healthy (HTTP {exc.code}); {hint}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TagcodeError(f"MLflow server {uri} is unreachable ({reason}); {hint}") from None
    elif parsed.scheme == "sqlite":
        path = sqlite_path(uri) or Path("mlflow.db")
        if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
            raise TagcodeError(f"MLflow store {uri}: directory {path.parent} is missing or not writable")
    elif parsed.hostname:
        port = parsed.port or {"postgresql": 5432, "mysql": 3306, "mssql": 1433}.get(parsed.scheme.split("+")[0])
        if port is None:
            return
        try:
            socket.create_connection((parsed.hostname, port), timeout=timeout).close()
        except OSError as exc:
            raise TagcodeError(f"MLflow database {parsed.scheme}://{parsed.hostname}:{port} is unreachable "
                               f"({exc.strerror or exc}); {hint}") from None


def connect(uri: str, experiment: str | None = None) -> tuple[Any, str | None]:
    """An ``MlflowClient`` on ``uri`` (also made the process's tracking URI) and, when named, the experiment's
    id, created on first use; a local store gets :func:`artifact_root` so nothing lands in the CWD."""
    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    if experiment is None:
        return client, None
    try:
        exp = client.get_experiment_by_name(experiment)
        if exp is not None:
            return client, exp.experiment_id
        location = artifact_root(uri)
        try:
            return client, client.create_experiment(experiment, artifact_location=location)
        except MlflowException:  # created meanwhile by a concurrent stage
            exp = client.get_experiment_by_name(experiment)
            if exp is None:
                raise
            return client, exp.experiment_id
    except MlflowException as exc:
        raise TagcodeError(f"MLflow {uri}: {exc.message.splitlines()[0]}") from None


@contextlib.contextmanager
def mlflow_errors(uri: str) -> Iterator[None]:
    """Turn an MLflow client error inside the block into a one-line TagcodeError naming the store."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        raise TagcodeError(f"MLflow {uri}: {one_line(exc)}") from None
