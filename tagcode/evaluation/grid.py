"""The retrieval grid: what each method retrieves for the same queries, as one PNG.

One panel per cell (a method at one code length), each row a query: its thumbnail, then its top results
(ranked by the codes' own search, as ``evaluate`` ranks them: Hamming on bits, AQD on additive codes, inner
product on floats; ties by ascending database index), framed green when the result shares a label with the
query, red when not. Queries are spread evenly over the query set (fixed, so every panel shows the same ones).
Composed with numpy and PIL from the decoded-image cache; written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tagcode.data.cache import ImageCache
from tagcode.errors import TagcodeError
from tagcode.io import atomic_path
from tagcode.retrieval import search
from tagcode.retrieval.codes import Codes, views

THUMB = 56  # px per thumbnail
BORDER = 3
GAP = 6
HEADER = 18  # px of the panel title line
RELEVANT, IRRELEVANT, QUERY = (46, 157, 74), (201, 71, 61), (60, 60, 60)


def top_k(query: Codes, database: Codes, rows: Sequence[int], k: int) -> np.ndarray:
    """Database row indices ``(len(rows), k)`` of each query row's top ``k`` by the codes' own search."""
    q, db = views(query), views(database)
    rows = np.asarray(rows)
    if "bits" in q and "bits" in db:
        return search.hamming_knn(q["bits"][rows], db["bits"], k)[1]
    if "codes" in db and "x" in q:
        return search.aqd_knn(q["x"][rows], db["codes"], db["codebooks"], k)[1]
    if "x" in q and "x" in db:
        return search.float_knn(q["x"][rows], db["x"], k, "ip")[1]
    raise TagcodeError(f"no search between query views {sorted(q)} and database views {sorted(db)}")


def pick_queries(ids: Sequence[str], labelled: np.ndarray, n: int) -> list[int]:
    """``n`` query rows spread evenly over the labelled queries (all of them when fewer)."""
    rows = np.flatnonzero(labelled)
    if len(rows) == 0:
        raise TagcodeError("retrieval grid: no query has a label")
    return [int(r) for r in rows[np.linspace(0, len(rows) - 1, min(n, len(rows))).round().astype(int)]]


def draw_retrieval_grid(cells: dict[str, tuple[Codes, Codes]], cache: ImageCache, labels: dict[str, np.ndarray],
                        path: str | Path, *, n_queries: int = 8, k: int = 10) -> list[str]:
    """Draw ``cells`` (``name → (query codes, database codes)``) to the PNG ``path``; ``labels`` maps image id
    → its label row (bool). Returns the query ids shown."""
    from PIL import Image, ImageDraw

    if not cells:
        raise TagcodeError("retrieval grid: no cell to draw")
    first_q = next(iter(cells.values()))[0]
    q_ids = [str(i) for i in first_q.ids]
    rows = pick_queries(q_ids, np.asarray([labels[i].any() for i in q_ids]), n_queries)
    shown = [q_ids[r] for r in rows]
    tile = THUMB + 2 * BORDER
    width = GAP + (k + 1) * (tile + GAP) + GAP
    panel_h = HEADER + len(rows) * (tile + GAP)
    canvas = Image.new("RGB", (width, GAP + len(cells) * (panel_h + GAP)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for p, (name, (query, database)) in enumerate(cells.items()):
        if [str(i) for i in query.ids] != q_ids:
            raise TagcodeError(f"retrieval grid: cell {name} has other queries than {next(iter(cells))}")
        top = GAP + p * (panel_h + GAP)
        draw.text((GAP, top + 3), f"{name}: {len(rows)} queries (grey) and their top {k}, green = relevant",
                  fill=(0, 0, 0))
        hits = top_k(query, database, rows, k)
        for r, (qid, result) in enumerate(zip(shown, hits, strict=True)):
            y = top + HEADER + r * (tile + GAP)
            tiles = [(qid, QUERY)] + [(str(database.ids[i]), RELEVANT if (labels.get(str(database.ids[i]),
                     np.zeros(0, bool)) & labels[qid]).any() else IRRELEVANT) for i in result]
            for c, (image_id, colour) in enumerate(tiles):
                x = GAP + c * (tile + GAP) + (GAP if c else 0)
                draw.rectangle((x, y, x + tile - 1, y + tile - 1), fill=colour)
                thumb = Image.fromarray(cache.get(cache.index_of([image_id]))[0]).resize((THUMB, THUMB))
                canvas.paste(thumb, (x + BORDER, y + BORDER))
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")
    return shown


def retrieval_grid(codes_dir: str | Path, prepared: str | Path, cells: Sequence[str], path: str | Path, *,
                   n_queries: int = 8, k: int = 10) -> list[str]:
    """Draw the grid of ``cells`` (``<method>-<bits>`` names of encode outputs in ``codes_dir``) over the
    prepare output's image cache and ground truth to ``path``; a missing cell is a one-line error."""
    from tagcode.data.manifest import read_labels
    from tagcode.retrieval.codes import load_codes

    if not cells:
        raise TagcodeError("the retrieval grid needs at least one cell at its code length (none was evaluated)")
    loaded = {}
    for name in cells:
        cell = Path(codes_dir) / name
        if not (cell / "database").is_dir():
            raise TagcodeError(f"{cell}: no codes for the retrieval grid's cell {name} (run `tagcode encode`)")
        loaded[name] = (load_codes(cell / "query"), load_codes(cell / "database"))
    query, database = next(iter(loaded.values()))
    ids = [str(i) for i in (*query.ids, *database.ids)]
    matrix, _ = read_labels(Path(prepared) / "manifest.parquet", ids)
    labels = dict(zip(ids, matrix.astype(bool), strict=True))
    return draw_retrieval_grid(loaded, ImageCache(Path(prepared) / "images"), labels, path, n_queries=n_queries, k=k)
