"""Tracking against real MLflow servers on loopback, started once per session: a PostgreSQL backend store (its
own database, created and dropped here) with local artifacts, and a SQLite backend with artifacts proxied to
S3 (a moto server). Racing promotions, the champion loaded by alias and served over REST."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tagcode.errors import TagcodeError
from tagcode.stages import run_stage
from tests.test_tracking import REPO, build_tiny, run_cell

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning", "ignore::FutureWarning")]
MLFLOW = str(Path(sys.executable).with_name("mlflow"))
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
METRIC = "wshrca_map_at_all"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    """Poll ``url`` until it answers 200; fail with the server's log when it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as resp:
            if resp.status == 200:
                return
        time.sleep(0.5)
    pytest.fail(f"{url} not ready after {timeout} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def mlflow_server(workdir: Path, backend: str, artifacts: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """``mlflow server`` on a free loopback port; yields its URL and stops it (SIGTERM stops its workers)."""
    port, log = free_port(), workdir / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([MLFLOW, "server", "--backend-store-uri", backend, "--artifacts-destination",
                                 artifacts, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                                stdout=fh, stderr=subprocess.STDOUT, cwd=workdir, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health", proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An MLflow server whose backend store is a fresh PostgreSQL database (dropped at the end). The driver is
    named: SQLAlchemy 2.1's default for ``postgresql://`` is psycopg 3, not psycopg2."""
    import psycopg2

    name = f"tagcode_mlflow_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(dbname="test", **PG)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    workdir = tmp_path_factory.mktemp("pg-server")
    try:
        backend = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
        with mlflow_server(workdir, backend, str(workdir / "artifacts")) as url:
            yield url
    finally:
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    """An MLflow server (SQLite backend) proxying artifacts to ``s3://mlflow-artifacts/proxied`` on a moto
    server; yields its URL and a boto3 client of the bucket. Only the server holds S3 credentials."""
    import boto3
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    creds = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                      region_name="us-east-1")
    s3.create_bucket(Bucket="mlflow-artifacts")
    workdir = tmp_path_factory.mktemp("s3-server")
    try:
        with mlflow_server(workdir, f"sqlite:///{workdir / 'mlflow.db'}", "s3://mlflow-artifacts/proxied",
                           {**creds, "MLFLOW_S3_ENDPOINT_URL": endpoint}) as url:
            yield url, s3
    finally:
        moto.stop()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny dataset, prepared once for the module."""
    return build_tiny(tmp_path_factory.mktemp("tiny"))


def _client():
    import mlflow

    return mlflow.MlflowClient()


def test_cell_on_postgres_champion_loads_and_serves(tmp_path: Path, tiny: tuple[Path, Path], pg_server: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from tagcode.data.features import features_for
    from tagcode.retrieval.codes import load_codes
    from tagcode.tracking.run import read_run_ref

    monkeypatch.setenv("MLFLOW_TRACKING_URI", pg_server)
    dirs = run_cell(tmp_path, tiny, "itq", 32)
    ref = read_run_ref(dirs["model"])
    assert ref.tracking_uri == pg_server
    decision = json.loads(run_stage("promote", {"model": str(dirs["model"]), "metric": METRIC,
                                                "out": str(tmp_path / "p.json")}))
    assert decision["promoted"] and decision["name"] == "tagcode-folder-itq-32"
    run = _client().get_run(ref.run_id)
    assert run.data.metrics[METRIC] == decision["candidate"] and run.data.params["train.bits"] == "32"
    database = load_codes(dirs["codes"] / "database")
    (x,) = features_for(tiny[1], database.ids[:5])
    model = mlflow.pyfunc.load_model("models:/tagcode-folder-itq-32@champion")
    assert np.array_equal(model.predict(x), database.bits[:5])
    champions = subprocess.run([sys.executable, "-m", "tagcode", "champions"], capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120, check=True).stdout
    assert champions.startswith(f"tagcode-folder-itq-32  v1  {METRIC} ")
    # serve the champion over REST (the project's environment, so tagcode is importable) and ask it
    port, log = free_port(), tmp_path / "serve.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([MLFLOW, "models", "serve", "-m", "models:/tagcode-folder-itq-32@champion",
                                 "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)], stdout=fh,
                                stderr=subprocess.STDOUT, cwd=tmp_path,
                                env={**os.environ, "PYTHONPATH": str(REPO),  # it execs uvicorn from PATH
                                     "PATH": f"{Path(MLFLOW).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", proc, log)
        body = json.dumps({"inputs": x.tolist()}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            served = np.asarray(json.loads(resp.read())["predictions"], dtype=np.uint8)
    finally:
        proc.terminate()
        proc.wait(30)
    assert np.array_equal(served, database.bits[:5])


RACER = """
import json, sys, time
from pathlib import Path
from tagcode.stages import run_stage
import mlflow  # imported before the start signal, so both processes race on the registry itself
model, out, ready, go = sys.argv[1:5]
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.01)
print(run_stage("promote", {"model": model, "metric": sys.argv[5], "out": out}))
"""


def test_racing_promotions_end_with_one_champion_the_better(tmp_path: Path, tiny: tuple[Path, Path],
                                                            pg_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tagcode.tracking.run import read_run_ref

    monkeypatch.setenv("MLFLOW_TRACKING_URI", pg_server)
    cells = [run_cell(tmp_path, tiny, "lsh", 24, seed=s, tag=f"s{s}")["model"] for s in (0, 1)]
    for model, value in zip(cells, (0.61, 0.67), strict=True):
        _client().log_metric(read_run_ref(model).run_id, METRIC, value, step=1)
    (tmp_path / "racer.py").write_text(RACER)
    go = tmp_path / "go"
    args = [[str(model), str(tmp_path / f"d{i}.json"), str(tmp_path / f"ready{i}"), str(go), METRIC]
            for i, model in enumerate(cells)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, str(tmp_path / "racer.py"), *a], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for a in args]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)) and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    decisions = [json.loads((tmp_path / f"d{i}.json").read_text()) for i in range(2)]
    name = "tagcode-folder-lsh-24"
    champion = _client().get_model_version_by_alias(name, "champion")
    assert champion.run_id == read_run_ref(cells[1]).run_id  # the better one, whichever came first
    assert champion.tags["tagcode.decision"] == "promoted"
    assert len(_client().search_model_versions(f"name = '{name}'")) == 2
    # the better one is promoted whether it went first or second; the worse one only when it went first
    assert decisions[1]["promoted"] and decisions[0]["promoted"] == (decisions[0]["champion"] is None)
    assert not _client().search_registered_models(f"name = '{name}.lock'")  # the lock was released


def test_lock_waits_for_its_holder_and_breaks_a_dead_one(pg_server: str) -> None:
    from tagcode.tracking.backend import connect
    from tagcode.tracking.registry import registry_lock

    client, _ = connect(pg_server)
    name = f"tagcode-locktest-{uuid.uuid4().hex[:6]}"
    with (registry_lock(client, name), pytest.raises(TagcodeError, match=r"promotion lock .* still held after 1 s"),
          registry_lock(client, name, wait_s=1.0)):
        pass
    client.create_registered_model(name + ".lock", tags={"owner": "dead", "since": f"{time.time() - 600:.3f}"})
    t0 = time.monotonic()
    with registry_lock(client, name, ttl_s=60):
        assert client.get_registered_model(name + ".lock").tags["owner"] != "dead"
    assert time.monotonic() - t0 < 10


def test_artifacts_proxied_to_s3(tmp_path: Path, tiny: tuple[Path, Path], s3_server: tuple[str, object],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from tagcode.tracking.run import read_run_ref

    url, s3 = s3_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)  # the client has no S3 access: the server proxies
    dirs = run_cell(tmp_path, tiny, "pq", 16)
    decision = json.loads(run_stage("promote", {"model": str(dirs["model"]), "metric": METRIC,
                                                "out": str(tmp_path / "p.json")}))
    assert decision["promoted"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="mlflow-artifacts", Prefix="proxied/")["Contents"]]
    assert any(k.endswith("/artifacts/MLmodel") for k in keys)
    assert any(k.endswith("/artifacts/pq-16/arrays.safetensors") for k in keys)
    assert any(k.endswith(f"{read_run_ref(dirs['model']).run_id}/artifacts/evaluation/pr_curve.png") for k in keys)
    from tagcode.data.features import features_for
    from tagcode.retrieval.codes import load_codes

    database = load_codes(dirs["codes"] / "database")
    (x,) = features_for(tiny[1], database.ids[:7])
    model = mlflow.pyfunc.load_model(f"models:/{decision['name']}@champion")
    assert np.array_equal(model.predict(x), database.codes[:7])
