"""The search service: champions load from a model directory and from the MLflow registry and rank exactly as
the evaluator's search; every endpoint over HTTP on loopback; bad input is a 4xx JSON error, never a 500."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from tagcode.errors import TagcodeError
from tagcode.retrieval.codes import load_codes
from tagcode.retrieval.search import aqd_knn, hamming_knn
from tagcode.serve.app import create_app
from tagcode.serve.catalog import Catalog, ServeError
from tagcode.serve.champions import from_directory, load_champion
from tagcode.serve.engine import SearchService
from tagcode.serve.server import running
from tagcode.stages import run_stage
from tests.serve_project import build_serve_project

REPO = Path(__file__).resolve().parents[1]
SCHEMATHESIS_CONFIG = REPO / "tests" / "schemathesis.toml"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_serve_project(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def service(project: Path) -> SearchService:
    catalog = Catalog(project / "data" / "prepared", embed=project / "data" / "embed",
                      features=project / "data" / "features")
    champions = [load_champion(str(project / "models" / name), codes_root=project / "codes")
                 for name in ("wsdhq-8", "itq-16")]
    return SearchService(catalog, champions)


def test_search_by_query_id_ranks_as_the_evaluator(project: Path, service: SearchService) -> None:
    """The top 20 of every query id are the evaluator's kNN (AQD for WSDHQ, Hamming for ITQ) up to ties: the
    same scores, and the same ids wherever the score is strictly better than the 20th (8-bit codes tie a lot)."""
    for key in ("wsdhq-8", "itq-16"):
        db, q = load_codes(project / "codes" / key / "database"), load_codes(project / "codes" / key / "query")
        for row in range(len(q.ids)):
            got = service.by_id(key, str(q.ids[row]), 20)["results"]
            if key == "itq-16":
                dist, idx = hamming_knn(q.bits[row:row + 1], db.bits, 20)
                better = dist[0] < dist[0][-1]
            else:
                dist, idx = aqd_knn(q.x[row:row + 1], db.codes, db.codebooks, 20)
                better = dist[0] > dist[0][-1] + 1e-5
            scores = np.array([r["score"] for r in got])
            np.testing.assert_allclose(scores, dist[0], rtol=1e-5, atol=1e-5)
            strict = scores < scores[-1] if key == "itq-16" else scores > scores[-1] + 1e-5
            assert {r["id"] for r, s in zip(got, strict, strict=True) if s} == set(db.ids[idx[0][better]]), (key, row)


def test_codes_of_another_model_are_refused(project: Path) -> None:
    with pytest.raises(TagcodeError, match="codes of itq 16 bits"):
        from_directory(project / "models" / "wsdhq-8", project / "codes" / "itq-16")
    with pytest.raises(TagcodeError, match="no codes here"):
        from_directory(project / "models" / "wsdhq-8", project / "codes" / "missing")


def test_tag_search_only_where_the_query_side_is_word_vectors(service: SearchService) -> None:
    """Tags query WSDHQ (its embedding lives in the tag vectors' space); on ITQ they are a clear 400."""
    res = service.by_tags("wsdhq-8", "Sky, ocean", 10)
    assert res["query"]["tags"] == ["sky", "ocean"] and len(res["results"]) == 10
    with pytest.raises(ServeError, match="not word-vector space") as exc:
        service.by_tags("itq-16", "sky", 10)
    assert exc.value.status == 400
    with pytest.raises(ServeError, match=r"unknown tag 'skyy'.*did you mean sky") as exc:
        service.by_tags("wsdhq-8", "skyy", 10)
    assert exc.value.status == 404


@pytest.fixture(scope="module")
def url(service: SearchService) -> Iterator[str]:
    """The app under uvicorn on a loopback port."""
    with running(create_app(service, max_upload=64 << 10)) as base:
        yield base


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _bomb() -> bytes:
    """A valid PNG header declaring 100,000 × 100,000 pixels (the pixel data is never reached)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + idat + chunk(b"IEND", b"")


def test_endpoints_answer_over_http(url: str, project: Path, service: SearchService) -> None:
    assert requests.get(f"{url}/health", timeout=10).json() == {"status": "ok", "champions": ["wsdhq-8", "itq-16"]}
    champs = {c["key"]: c for c in requests.get(f"{url}/api/champions", timeout=10).json()}
    assert champs["wsdhq-8"]["tag_search"] and not champs["itq-16"]["tag_search"]
    assert champs["itq-16"]["metric"] == "hamming" and champs["wsdhq-8"]["metric"] == "inner_product"
    page = requests.get(f"{url}/api/queries", params={"limit": 3}, timeout=10).json()
    assert page["total"] == 8 and len(page["queries"]) == 3
    qid = page["queries"][0]["id"]
    res = requests.get(f"{url}/api/search/id", params={"id": qid, "champion": "itq-16", "k": 20}, timeout=10).json()
    assert res["query"]["ground_truth"] and len(res["results"]) == 20
    assert res["results"] == service.by_id("itq-16", qid, 20)["results"]
    assert all(r["relevant"] in (True, False) for r in res["results"])  # the query has labels, so every row is marked
    colour = qid.split("/")[-1].split("_")[0]  # tiny dataset ids name their class: relevance is the same class
    assert [r["relevant"] for r in res["results"]] == [r["id"].split("/")[-1].startswith(colour)
                                                       for r in res["results"]]
    tags = requests.get(f"{url}/api/search/tags", params={"q": "sky, ocean", "k": 5}, timeout=10).json()
    assert tags["champion"] == "wsdhq-8" and tags["query"]["tags"] == ["sky", "ocean"] and len(tags["results"]) == 5
    thumb = requests.get(f"{url}/api/thumbnail", params={"id": qid}, timeout=10)
    assert thumb.headers["content-type"] == "image/png"
    cache = service.catalog.cache
    shown = np.asarray(Image.open(io.BytesIO(thumb.content)))
    np.testing.assert_array_equal(shown, cache.get(cache.index_of([qid]))[0])


def test_an_uploaded_dataset_image_finds_itself(url: str, project: Path, service: SearchService) -> None:
    """Upload a database image's own file: decoded, through tiny_cnn and the method as the pipeline did, its
    codes equal its database codes, so it scores like itself (rank 1 up to ties)."""
    db_id = "images/red_05"
    body = (project / "ds" / "images" / "red_05.png").read_bytes()
    for key in ("itq-16", "wsdhq-8"):
        res = requests.post(f"{url}/api/search/image", params={"champion": key, "k": 5}, data=body, timeout=30)
        assert res.status_code == 200, res.text
        own = service.by_id(key, db_id, 5)["results"]
        assert res.json()["results"][0]["score"] == pytest.approx(own[0]["score"], abs=1e-4)
        assert db_id in {r["id"] for r in res.json()["results"] if r["score"] == pytest.approx(own[0]["score"])}


BAD = [
    ("get", "/api/search/id", {"id": "images/nope"}, None, 404, "unknown image id"),
    ("get", "/api/search/id", {"id": "../../etc/passwd"}, None, 404, "unknown image id"),
    ("get", "/api/thumbnail", {"id": "../data/prepared/manifest.parquet"}, None, 404, "no image"),
    ("get", "/api/thumbnail", {"id": "/etc/passwd"}, None, 404, "no image"),
    ("get", "/api/search/id", {"id": "images/red_00", "champion": "lsh-64"}, None, 404, "unknown champion"),
    ("get", "/api/search/id", {"id": "images/red_00", "k": 0}, None, 422, "k:"),
    ("get", "/api/search/id", {"id": "images/red_00", "k": 101}, None, 422, "k:"),
    ("get", "/api/search/id", {}, None, 422, "id:"),
    ("get", "/api/search/tags", {"q": "sky", "champion": "itq-16"}, None, 400, "not word-vector space"),
    ("get", "/api/search/tags", {"q": "zebra"}, None, 404, "unknown tag 'zebra'"),
    ("get", "/api/search/tags", {"q": " , !"}, None, 422, "q: String should match pattern"),
    ("post", "/api/search/image", {}, b"", 422, "empty upload"),
    ("post", "/api/search/image", {}, b"GIF89a not really", 422, "upload: truncated or corrupt image"),
    ("post", "/api/search/image", {}, b"plain text, not an image", 422, "not an image"),
    ("post", "/api/search/image", {}, _bomb(), 422, "decompression bomb"),
    ("post", "/api/search/image", {}, b"\0" * (65 << 10), 413, "over the 65536-byte limit"),
    ("get", "/no/such/route", {}, None, 404, "Not Found"),
    ("delete", "/api/search/id", {}, None, 405, "Method Not Allowed"),
]


@pytest.mark.parametrize(("verb", "path", "params", "body", "status", "message"), BAD)
def test_bad_input_is_a_4xx_json_error(url: str, verb: str, path: str, params: dict, body: bytes | None, status: int,
                                       message: str) -> None:
    res = requests.request(verb, f"{url}{path}", params=params, data=body, timeout=10)
    assert res.status_code == status, res.text
    assert message in res.json()["error"]


def test_an_oversized_upload_without_a_length_is_cut_off(url: str) -> None:
    """A chunked upload (no Content-Length) is refused once it passes the limit, not read to the end."""
    def chunks() -> Iterator[bytes]:
        for _ in range(1000):
            yield b"\xff" * 4096
    res = requests.post(f"{url}/api/search/image", data=chunks(), timeout=10)
    assert res.status_code == 413 and "over the 65536-byte limit" in res.json()["error"]


def test_metrics_count_requests(url: str) -> None:
    requests.get(f"{url}/api/search/id", params={"id": "images/nope"}, timeout=10)
    text = requests.get(f"{url}/metrics", timeout=10).text
    assert 'tagcode_serve_requests_total{route="/api/search/id",status="404"}' in text
    assert 'tagcode_serve_database_codes{champion="itq-16"} 272.0' in text
    assert "tagcode_serve_request_seconds_bucket" in text


def test_schemathesis_finds_no_server_error_and_the_service_still_answers(url: str, tmp_path: Path) -> None:
    """Fuzz every operation of the app's own OpenAPI schema (all checks: no 5xx, documented status codes and
    content types, responses matching their schemas); afterwards the service still answers."""
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(SCHEMATHESIS_CONFIG), "run",
         f"{url}/openapi.json", "--checks", "all",
         "--max-examples", "40", "--seed", "1", "--generation-database", "none", "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "HYPOTHESIS_STORAGE_DIRECTORY": str(tmp_path / "hypothesis")})
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert requests.get(f"{url}/health", timeout=10).json()["status"] == "ok"
    assert requests.get(f"{url}/api/search/id", params={"id": "images/red_00"}, timeout=10).status_code == 200


def test_champion_loads_from_the_registry_by_name(project: Path, tmp_path: Path) -> None:
    """Train, evaluate and promote a cell with tracking on (the test's SQLite store); the service loads the
    champion by its registered name, encodes the split with it, and ranks exactly as the directory codes do;
    a name with no champion is a one-line error."""
    prep, feats = project / "data" / "prepared", project / "data" / "features"
    model, codes = tmp_path / "models" / "itq-16", tmp_path / "codes" / "itq-16"
    run_stage("train", {"method": "itq", "bits": 16, "prepared": str(prep), "features": str(feats),
                        "out": str(model)})
    run_stage("encode", {"model": str(model), "prepared": str(prep), "features": str(feats), "out": str(codes)})
    run_stage("evaluate", {"codes": str(codes), "prepared": str(prep), "protocols": ["wshrca"],
                           "out": str(tmp_path / "metrics")})
    decision = json.loads(run_stage("promote", {"model": str(model), "metric": "wshrca_map_at_all",
                                                "out": str(tmp_path / "promotion.json")}))
    assert decision["promoted"] and decision["name"] == "tagcode-folder-itq-16"
    for ref in ("tagcode-folder-itq-16", "models:/tagcode-folder-itq-16@champion"):
        champion = load_champion(ref, prepared=prep, features=feats)
        assert champion.key == "itq-16" and champion.source == "models:/tagcode-folder-itq-16@champion"
        database = load_codes(codes / "database")
        assert list(champion.database.ids) == list(database.ids)
        np.testing.assert_array_equal(champion.database.bits, database.bits)
        np.testing.assert_array_equal(champion.queries.bits, load_codes(codes / "query").bits)
    with pytest.raises(TagcodeError, match="tagcode-folder-lsh-8"):
        load_champion("tagcode-folder-lsh-8", prepared=prep, features=feats)


def test_kubernetes_manifest_configures_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """deploy/serve.yaml: a ConfigMap, a Deployment running `tagcode serve` in the pipeline's CPU stage image
    with that ConfigMap as its environment, and a Service on its port; the CLI reads that environment into
    the settings it serves with (captured instead of started)."""
    import tomllib

    import yaml
    from typer.testing import CliRunner

    from components.images import STAGE_IMAGES
    from tagcode.cli import app

    docs = {d["kind"]: d for d in yaml.safe_load_all((REPO / "deploy" / "serve.yaml").read_text())}
    assert set(docs) == {"ConfigMap", "Deployment", "Service"}
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert container["image"] == f"ghcr.io/tagcode/{STAGE_IMAGES['encode']}:{version}"
    assert container["args"] == ["serve"]
    assert container["envFrom"][0] == {"configMapRef": {"name": docs["ConfigMap"]["metadata"]["name"]}}
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's user
    config = docs["ConfigMap"]["data"]
    assert int(config["TAGCODE_SERVE_PORT"]) == container["ports"][0]["containerPort"]
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    assert docs["Service"]["spec"]["selector"] == docs["Deployment"]["spec"]["selector"]["matchLabels"]
    seen = []
    monkeypatch.setattr("tagcode.serve.server.serve", seen.append)
    result = CliRunner().invoke(app, ["serve"], env=config)
    assert result.exit_code == 0, result.output
    settings = seen[0]
    assert settings.champions == config["TAGCODE_SERVE_CHAMPIONS"].split(",")
    assert (settings.host, settings.port, settings.prepared) == ("0.0.0.0", 8000, config["TAGCODE_SERVE_PREPARED"])
    unknown = {k for k in config if k.startswith("TAGCODE_SERVE_")} - {f"TAGCODE_SERVE_{f.upper()}"
                                                                       for f in type(settings).model_fields}
    assert not unknown


def test_serve_command_errors_are_one_line(project: Path, tmp_path: Path) -> None:
    """`tagcode serve` with inputs that are not there: one line on stderr naming them, exit code 2."""
    cases = [(["--champions", str(project / "models" / "lsh-64"), "--codes-root", str(project / "codes")],
              "no trained model here"),
             (["--champions", str(project / "models" / "itq-16"), "--codes-root", str(tmp_path)], "no codes here"),
             (["--prepared", str(tmp_path / "nothing")], "manifest not found"),
             (["--embed", str(tmp_path / "nothing")], "no embed output here"),
             (["--port", "http"], "port: Input should be a valid integer")]
    base = ["--prepared", str(project / "data" / "prepared"), "--features", str(project / "data" / "features"),
            "--embed", str(project / "data" / "embed")]
    for args, message in cases:
        proc = subprocess.run([sys.executable, "-m", "tagcode", "serve", *base, *args], capture_output=True,
                              text=True, timeout=120, cwd=tmp_path)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert proc.stderr.count("\n") == 1, proc.stderr
