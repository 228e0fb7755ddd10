"""Test hygiene shared by every test: no telemetry, no files outside the test's temporary directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TAGCODE_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's ../shared folder (real MIRFlickr/NUS-WIDE tags and the MIRFlickr mini fixture)."""
    if not SHARED.is_dir():
        pytest.fail(f"../shared not found at {SHARED}; set TAGCODE_SHARED")
    return SHARED


@pytest.fixture(scope="session")
def mirflickr_mini(shared_dir: Path) -> Path:
    """Root of the 40-image MIRFlickr-25K fixture in the official layout."""
    return shared_dir / "fixtures" / "mirflickr-mini"


@pytest.fixture(autouse=True)
def _no_cwd_litter(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Point MLflow at the test's temporary directory so nothing lands in the repository."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")


@pytest.fixture(scope="session", autouse=True)
def _matplotlib_config(tmp_path_factory: pytest.TempPathFactory) -> None:
    """matplotlib writes its font cache to ~/.config or ~/.cache; give it the session's temporary directory
    (before any test imports it; subprocesses inherit the variable)."""
    os.environ["MPLCONFIGDIR"] = str(tmp_path_factory.mktemp("matplotlib"))


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on a free local port, for the whole module."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
