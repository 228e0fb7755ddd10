"""The search service: champions load from a model directory and from the MLflow registry and rank exactly as
the evaluator's search; every endpoint over HTTP on loopback; bad input is a 4xx JSON error, never a 500."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tagcode.errors import TagcodeError
from tagcode.retrieval.codes import load_codes
from tagcode.retrieval.search import aqd_knn, hamming_knn
from tagcode.serve.catalog import Catalog, ServeError
from tagcode.serve.champions import from_directory, load_champion
from tagcode.serve.engine import SearchService
from tests.serve_project import build_serve_project


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
