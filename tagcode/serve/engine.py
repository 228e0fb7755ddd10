"""The searches: a query (an image id, uploaded image bytes, tag words) → a query vector → the champion's faiss
index → the top k database images with their scores, tags and relevance.

The query vector is the view the exported index scores (``tagcode.retrieval.index``): packed bits for a
binary index (Hamming, lower is closer), the float embedding for an inner-product index (float codes, and
additive quantizers' AQD ⟨q, x̂⟩, higher is closer). Tag words are a query only where the champion's query
side lives in word-vector space: a tag-supervised quantizer whose codewords have the tag vectors' width
(WSDHQ), so the tags' embedding is scored against the reconstructed database like an image's embedding.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from tagcode.retrieval.codes import BinaryCodes, Codes, QuantizedCodes
from tagcode.serve.catalog import Catalog, ServeError
from tagcode.serve.champions import Champion

MAX_K = 100


def query_vector(index: Any, codes: Codes, row: int) -> np.ndarray:
    """Row ``row`` of ``codes`` as the ``(1, ·)`` query ``index`` takes: packed bits for a binary index, else the
    float embedding (for quantized codes without one, the reconstruction Σ_m C_m[k_m])."""
    import faiss

    if isinstance(index, faiss.IndexBinary):
        if not isinstance(codes, BinaryCodes):
            raise ServeError(400, "this champion's index is binary but its codes are not")
        return codes.bits[row:row + 1]
    if codes.x is not None:
        return codes.x[row:row + 1]
    if isinstance(codes, QuantizedCodes):
        m = np.arange(codes.codebooks.shape[0])
        return codes.codebooks[m, codes.codes[row]].sum(axis=0, keepdims=True)
    raise ServeError(400, "these codes carry no float view to query an inner-product index with")


def tag_space(champion: Champion, catalog: Catalog) -> bool:
    """True when tag words are a valid query for ``champion`` (see the module docstring)."""
    method, db = champion.method, champion.database
    return (catalog.embedding is not None and method.supervision == "tags" and isinstance(db, QuantizedCodes)
            and db.codebooks.shape[2] == catalog.embedding.vectors.shape[1])


class SearchService:
    """The champions (by key, the first is the default) over one catalog, and every search the API offers."""

    def __init__(self, catalog: Catalog, champions: list[Champion]) -> None:
        if not champions:
            raise ServeError(400, "no champion to serve")
        self.catalog = catalog
        self.champions = {c.key: c for c in champions}
        if len(self.champions) != len(champions):
            raise ServeError(400, f"two champions share a key: {[c.key for c in champions]}")
        self.default = champions[0].key

    def champion(self, key: str | None) -> Champion:
        """The champion ``key`` (the default when None); an unknown key is a 404."""
        key = key or self.default
        if key not in self.champions:
            raise ServeError(404, f"unknown champion {key!r}; serving {', '.join(self.champions)}")
        return self.champions[key]

    def describe(self) -> list[dict[str, Any]]:
        """What each champion is: key, method, bits, code kind, source, counts, whether tag search works."""
        return [{"key": c.key, "method": c.method.label, "bits": c.method.bits, "kind": c.method.kind,
                 "source": c.source, "database": len(c.database.ids), "queries": len(c.queries.ids),
                 "metric": self.metric(c), "tag_search": tag_space(c, self.catalog),
                 "image_search": c.method.input == "images" or self.catalog.backbone is not None}
                for c in self.champions.values()]

    @staticmethod
    def metric(champion: Champion) -> str:
        """``hamming`` (lower is closer) or ``inner_product`` (higher is closer)."""
        import faiss

        return "hamming" if isinstance(champion.index, faiss.IndexBinary) else "inner_product"

    def by_id(self, key: str | None, image_id: str, k: int) -> dict[str, Any]:
        """Search with a query-set or database image's own codes (a query id first, then a database id)."""
        ch = self.champion(key)
        if image_id in ch.query_row:
            vec = query_vector(ch.index, ch.queries, ch.query_row[image_id])
        elif image_id in ch.database_row:
            vec = query_vector(ch.index, ch.database, ch.database_row[image_id])
        else:
            raise ServeError(404, f"unknown image id {image_id!r}: not a query or database image of {ch.key}")
        query = {"kind": "id", "id": image_id, "split": self.catalog.split.get(image_id),
                 "tags": self.catalog.image_tags(image_id), "ground_truth": self.catalog.has_labels(image_id)}
        return self._search(ch, vec, k, query, image_id)

    def by_tags(self, key: str | None, text: str, k: int) -> dict[str, Any]:
        """Search with the embedding of tag words (WSDHQ: text-to-image retrieval from a model trained on tags)."""
        ch = self.champion(key)
        if not tag_space(ch, self.catalog):
            raise ServeError(400, f"champion {ch.key}: its query side is not word-vector space, so tags cannot "
                                  "query it; pick a WSDHQ champion (a quantizer trained on the tag vectors)")
        vec, words = self.catalog.tag_query(text)
        return self._search(ch, vec, k, {"kind": "tags", "tags": words, "ground_truth": False}, None)

    def by_image(self, key: str | None, data: bytes, k: int) -> dict[str, Any]:
        """Search with an uploaded image: decoded like the dataset, the features' backbone (or the end-to-end
        method itself), the method's query side, then the index."""
        ch = self.champion(key)
        start = time.perf_counter()
        image = self.catalog.decode_upload(data)
        if ch.method.input == "images":
            x = image[None]
        elif self.catalog.backbone is None:
            raise ServeError(400, "image search is off: the service was started without the features "
                                  "directory (--features) that names the backbone")
        else:
            x = self.catalog.backbone.features(image)
        codes = ch.method.encode_query(x, np.asarray(["upload"]))
        query = {"kind": "image", "ground_truth": False, "encode_ms": round((time.perf_counter() - start) * 1e3, 3)}
        return self._search(ch, query_vector(ch.index, codes, 0), k, query, None)

    def _search(self, ch: Champion, vec: np.ndarray, k: int, query: dict[str, Any],
                query_id: str | None) -> dict[str, Any]:
        start = time.perf_counter()
        k = min(k, len(ch.database.ids))
        dist, rows = ch.index.search(np.ascontiguousarray(vec), k)
        ids = [str(ch.database.ids[r]) for r in rows[0] if r >= 0]
        relevant = self.catalog.relevant(query_id, ids)
        results = [{"rank": n + 1, "id": i, "score": float(s), "tags": self.catalog.image_tags(i),
                    "thumbnail": i in self.catalog.split, "relevant": rel}
                   for n, (i, s, rel) in enumerate(zip(ids, dist[0], relevant, strict=False))]
        return {"champion": ch.key, "metric": self.metric(ch), "query": query, "results": results,
                "search_ms": round((time.perf_counter() - start) * 1e3, 3)}

    def queries(self, limit: int, offset: int) -> dict[str, Any]:
        """A page of the query set: ids with their tags and whether they have ground truth."""
        ids = self.catalog.query_ids[offset:offset + limit]
        return {"total": len(self.catalog.query_ids), "offset": offset,
                "queries": [{"id": i, "tags": self.catalog.image_tags(i), "ground_truth": self.catalog.has_labels(i)}
                            for i in ids]}

