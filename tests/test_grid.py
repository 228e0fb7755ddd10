"""The retrieval grid: every tile is the result the codes' own search ranks there, framed by its relevance; the
report stage draws it for the 32-bit cells when given the codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tagcode.data.cache import ImageCache
from tagcode.data.manifest import read_labels
from tagcode.errors import TagcodeError
from tagcode.evaluation import grid
from tagcode.retrieval.codes import load_codes
from tagcode.retrieval.search import aqd_knn, hamming_knn
from tagcode.stages import run_stage
from tests.serve_project import build_serve_project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_serve_project(tmp_path_factory.mktemp("grid"))


def test_tiles_are_the_ranked_results_framed_by_relevance(project: Path, tmp_path: Path) -> None:
    prepared = project / "data" / "prepared"
    cells = {name: (load_codes(project / "codes" / name / "query"), load_codes(project / "codes" / name / "database"))
             for name in ("itq-16", "wsdhq-8")}
    q, _ = cells["itq-16"]
    ids = [str(i) for i in (*q.ids, *cells["itq-16"][1].ids)]
    labels = dict(zip(ids, read_labels(prepared / "manifest.parquet", ids)[0].astype(bool), strict=True))
    cache = ImageCache(prepared / "images")
    shown = grid.draw_retrieval_grid(cells, cache, labels, tmp_path / "grid.png", n_queries=4, k=5)
    assert shown == [str(q.ids[r]) for r in (0, 2, 5, 7)]  # 4 spread over the 8 labelled queries
    png = np.asarray(Image.open(tmp_path / "grid.png").convert("RGB"))
    tile, panel = grid.THUMB + 2 * grid.BORDER, grid.HEADER + 4 * (grid.THUMB + 2 * grid.BORDER + grid.GAP)
    for p, (name, (query, database)) in enumerate(cells.items()):
        rows = [list(query.ids).index(i) for i in shown]
        if name == "itq-16":
            expected = hamming_knn(query.bits[rows], database.bits, 5)[1]
        else:
            expected = aqd_knn(query.x[rows], database.codes, database.codebooks, 5)[1]
        for r, qid in enumerate(shown):
            y = grid.GAP + p * (panel + grid.GAP) + grid.HEADER + r * (tile + grid.GAP)
            for c, image_id in enumerate([qid, *(str(database.ids[i]) for i in expected[r])]):
                x = grid.GAP + c * (tile + grid.GAP) + (grid.GAP if c else 0)
                relevant = (labels[image_id] & labels[qid]).any()
                colour = grid.QUERY if c == 0 else grid.RELEVANT if relevant else grid.IRRELEVANT
                assert tuple(png[y + 1, x + 1]) == colour, (name, r, c)
                thumb = Image.fromarray(cache.get(cache.index_of([image_id]))[0]).resize((grid.THUMB, grid.THUMB))
                inner = png[y + grid.BORDER:y + grid.BORDER + grid.THUMB, x + grid.BORDER:x + grid.BORDER + grid.THUMB]
                np.testing.assert_array_equal(inner, np.asarray(thumb))


def test_report_draws_the_grid_of_the_32_bit_cells(project: Path, tmp_path: Path) -> None:
    prepared, feats = str(project / "data" / "prepared"), str(project / "data" / "features")
    for method, bits in (("lsh", 32), ("lsh", 16)):
        name = f"{method}-{bits}"
        run_stage("train", {"method": method, "bits": bits, "prepared": prepared, "features": feats,
                            "tracking": False, "out": str(tmp_path / "models" / name)})
        run_stage("encode", {"model": str(tmp_path / "models" / name), "prepared": prepared, "features": feats,
                             "out": str(tmp_path / "codes" / name)})
        run_stage("evaluate", {"codes": str(tmp_path / "codes" / name), "prepared": prepared, "protocols": ["wshrca"],
                               "tracking": False, "out": str(tmp_path / "metrics" / name)})
    json.loads(run_stage("report", {"metrics": str(tmp_path / "metrics"), "prepared": prepared,
                                    "codes": str(tmp_path / "codes"), "out": str(tmp_path / "reports")}))
    png = Image.open(tmp_path / "reports" / "retrieval_grid.png")
    tile = grid.THUMB + 2 * grid.BORDER + grid.GAP
    assert png.size == (grid.GAP + 11 * tile + grid.GAP, grid.GAP + grid.HEADER + 8 * tile + grid.GAP)  # one panel
    shutil.rmtree(tmp_path / "codes" / "lsh-32")
    with pytest.raises(TagcodeError, match="no codes for the retrieval grid's cell lsh-32"):
        run_stage("report", {"metrics": str(tmp_path / "metrics"), "prepared": prepared,
                             "codes": str(tmp_path / "codes"), "out": str(tmp_path / "reports")})
    shutil.rmtree(tmp_path / "metrics" / "lsh-32")  # no 32-bit cell left: one line, not a StopIteration
    with pytest.raises(TagcodeError, match="retrieval grid needs at least one cell at its code length"):
        run_stage("report", {"metrics": str(tmp_path / "metrics"), "prepared": prepared,
                             "codes": str(tmp_path / "codes"), "out": str(tmp_path / "reports")})
