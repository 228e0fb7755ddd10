"""embed_tags: word vectors for the vocabulary, tag-graph enhancement and synonym merging (WSDHQ §2).

Outputs (directory ``out``, published atomically):

- ``tag_embeddings.npy``: float32 ``(T, D)``, one row per final (merged) tag: unit length, or with
  ``normalize: false`` the same direction at the raw vectors' norm (the mean norm of a merged group's members);
- ``final_vocab.parquet``: final tag id, name (most frequent member), members, training count;
- ``merge_map.json``: ``{final_id: [raw vocabulary indices]}``, with ``"-1"`` holding the dropped (OOV) tags;
- ``image_tags.npz``: the image×final-tag matrix (logical OR of each group's columns) with the train mask;
- ``graph.npz``: the sparse tag correlation graph over the kept raw tags;
- ``report.json``: OOV count, merged vocabulary size, the margin calibration figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field, ValidationError

from tagcode.config import StageConfig, validation_message
from tagcode.errors import TagcodeError
from tagcode.io import atomic_path, write_json
from tagcode.tags.graph import (
    calibrate_eps,
    correlation_graph,
    enhance,
    margin_statistics,
    merge_matrix,
    merge_synonyms,
)
from tagcode.tags.matrix import TagMatrix, load_tag_matrix, save_tag_matrix
from tagcode.tags.vectors import embed_vocabulary, load_vectors, train_tag_word2vec


class Config(StageConfig):
    """Options of the embed_tags stage."""

    tags: str = Field("data/tags", description="output directory of the clean_tags stage")
    vectors: str = Field("glove-6b-50d", description="word vectors: 'glove-6b-50d' (PyPI package), 'minilm-l6' "
                                                     "(384-d MiniLM-L6 sentence embeddings of the tags as phrases), "
                                                     "'trained' (Word2Vec on the training tags), or a path to a "
                                                     "word2vec .bin/.bin.gz/.txt, GloVe .txt or gensim .kv file")
    allow_pickle: bool = Field(False, description="trust a gensim .kv vectors file (a pickle: unpickling can run "
                                                  "arbitrary code, so it is refused otherwise)")
    oov: Literal["drop", "trained", "random"] = Field("drop", description="out-of-vocabulary tags: drop them, "
                                                      "fill from a Word2Vec trained on the tags, or seeded random")
    compose: bool = Field(False, description="look OOV compounds up by their words (blackandwhite → "
                                             "black-and-white, or the mean of black, and, white)")
    center: float = Field(0.0, ge=0, le=1, description="subtract this fraction of the mean word vector before "
                                                       "normalising (0 off; bench/results/tag_calibration.md)")
    normalize: bool = Field(True, description="store unit rows; false keeps each row's raw norm (WSHRCA trains on "
                                               "raw vectors); enhancement and merging use the unit directions")
    graph: bool = Field(True, description="enhance embeddings with the tag co-occurrence graph")
    tau: float = Field(0.4, ge=0, le=1, description="co-occurrence graph edge threshold on P(j|i)")
    alpha: float = Field(0.3, ge=0, le=1, description="weight of the graph neighbours in the enhancement")
    merge: bool = Field(True, description="merge synonyms with DBSCAN")
    eps: float | None = Field(None, gt=0, description="DBSCAN cosine eps; None: calibrate to target_size")
    target_size: float = Field(0.85, gt=0, description="merged vocabulary size when eps is None: a count, or a "
                                                        "fraction of the kept tags if below 1 (WSDHQ: 1178/1386)")
    min_samples: int = Field(1, ge=1, description="DBSCAN min_samples")
    seed: int = Field(0, ge=0, description="seed for random OOV vectors and Word2Vec")
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="named extra embeddings, each this section's options overridden "
        "(e.g. {minilm: {vectors: minilm-l6}, plain: {graph: false, merge: false, normalize: false}}), written to "
        "<out>/variants/<name> and chosen by a train variant's `embed`")
    out: str = Field("data/embed", description="output directory")


def _vectors(cfg: Config, vocab: list[str], train_lists: list[list[str]]) -> tuple[Any, Any]:
    """The pretrained KeyedVectors (or None) and, when needed, the Word2Vec trained on the tags."""
    kv = None if cfg.vectors == "trained" else load_vectors(cfg.vectors, vocab=vocab, allow_pickle=cfg.allow_pickle)
    trained = None
    if cfg.vectors == "trained" or cfg.oov == "trained":
        dim = kv.vector_size if kv is not None else 50
        trained = train_tag_word2vec(train_lists, dim=dim, seed=cfg.seed)
    return kv, trained


def run(cfg: Config) -> dict[str, Any]:
    """Run the stage: the embedding of ``cfg`` and one per named variant, published together in ``out``;
    returns the report also written to ``report.json`` (the variants' reports under ``variants``)."""
    tm = load_tag_matrix(Path(cfg.tags) / "image_tags.npz")
    configs = {}
    for name, overrides in cfg.variants.items():
        if not name.isidentifier() or {"variants", "out", "tags"} & set(overrides):
            raise TagcodeError(f"embed_tags variant {name!r}: a name must be an identifier, and a variant sets "
                               "neither variants, tags nor out")
        try:
            configs[name] = Config.model_validate({**cfg.model_dump(), "variants": {}, **overrides})
        except ValidationError as exc:
            raise TagcodeError(validation_message(exc, f"embed_tags variant {name!r}")) from None
    with atomic_path(cfg.out) as out:
        report = embed_into(cfg, tm, out)
        report["variants"] = {}
        for name, vcfg in configs.items():
            report["variants"][name] = embed_into(vcfg, tm, out / "variants" / name)
            write_json(out / "variants" / name / "report.json", report["variants"][name])
        write_json(out / "report.json", report)
    return report


def embed_into(cfg: Config, tm: TagMatrix, out: Path) -> dict[str, Any]:
    """Embed, enhance and merge the tags of ``tm`` as ``cfg`` says, writing the artifacts (all but the report)
    into directory ``out`` (created); returns the report."""
    vocab = [str(t) for t in tm.tags]
    train_rows = tm.matrix[tm.train]
    train_lists = [[vocab[j] for j in train_rows.indices[a:b]] for a, b in zip(train_rows.indptr[:-1],
                                                                                train_rows.indptr[1:], strict=True)]
    kv, trained = _vectors(cfg, vocab, train_lists)
    emb, kept, vec_report = embed_vocabulary(vocab, kv, oov=cfg.oov if kv is not None else "trained",
                                             train_tag_lists=train_lists, seed=cfg.seed, trained_kv=trained,
                                             compose=cfg.compose, center=cfg.center)
    if not kept.any():
        raise TagcodeError(f"{cfg.vectors}: none of the {len(vocab)} tags has a word vector (oov={cfg.oov})")
    kept_idx = np.flatnonzero(kept)
    emb = emb[kept_idx]
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    emb = emb / np.maximum(norms, 1e-12)
    train_kept = sp.csr_matrix(train_rows[:, kept_idx])
    graph = correlation_graph(train_kept, tau=cfg.tau) if cfg.graph else sp.csr_matrix((len(kept_idx),) * 2)
    enhanced = enhance(emb, graph, alpha=cfg.alpha) if cfg.graph else emb
    if cfg.merge:
        target = round(cfg.target_size * len(kept_idx)) if cfg.target_size < 1 else int(cfg.target_size)
        eps = cfg.eps if cfg.eps is not None else calibrate_eps(enhanced, min(target, len(kept_idx)))
        final, groups = merge_synonyms(enhanced, eps=eps, min_samples=cfg.min_samples)
    else:
        eps, final, groups = None, enhanced, [[i] for i in range(len(kept_idx))]
    if not cfg.normalize:
        final = final * np.array([norms[g].mean() for g in groups], dtype=np.float32)[:, None]
    counts = np.asarray(train_kept.sum(axis=0)).ravel()
    names = [vocab[kept_idx[max(g, key=lambda i: (counts[i], -i))]] for g in groups]
    merged = merge_matrix(sp.csr_matrix(tm.matrix[:, kept_idx]), groups)
    has_tags = np.asarray(merged.sum(axis=1)).ravel() > 0
    report = {
        "vocabulary": len(vocab), "vectors": cfg.vectors, **{f"vectors_{k}": v for k, v in vec_report.items()},
        "kept": int(kept.sum()), "oov": int((~kept).sum()), "final_tags": len(groups), "eps": eps,
        "normalize": cfg.normalize, "mean_norm": float(np.linalg.norm(final, axis=1).mean()),
        "graph_edges": int(graph.nnz), "train_usable": int((tm.train & has_tags).sum()),
        "margin_raw": margin_statistics(emb, train_kept),
        "margin_final": margin_statistics(final, merge_matrix(train_kept, groups)),
    }
    out.mkdir(parents=True)
    np.save(out / "tag_embeddings.npy", final.astype(np.float32))
    pd.DataFrame({
        "final_id": np.arange(len(groups)), "tag": names,
        "members": [[vocab[kept_idx[i]] for i in g] for g in groups],
        "count": np.asarray(merged[tm.train].sum(axis=0)).ravel().astype(np.int64),
    }).to_parquet(out / "final_vocab.parquet", index=False)
    merge_map = {str(k): [int(kept_idx[i]) for i in g] for k, g in enumerate(groups)}
    merge_map["-1"] = [int(i) for i in np.flatnonzero(~kept)]
    write_json(out / "merge_map.json", merge_map)
    save_tag_matrix(out / "image_tags.npz", TagMatrix(ids=tm.ids, tags=np.asarray(names, dtype=object),
                                                      matrix=merged, train=tm.train & has_tags))
    sp.save_npz(out / "graph.npz", sp.csr_matrix(graph))
    return report


def format_summary(report: dict[str, Any]) -> str:
    """A short human summary for the CLI."""
    m = report["margin_final"]
    return (f"embed_tags: {report['vocabulary']} tags, {report['oov']} OOV, {report['kept']} embedded with "
            f"{report['vectors']}; {report['graph_edges']} graph edges; merged to {report['final_tags']} tags "
            f"(eps {report['eps']}); mean positive-negative cosine {m.get('mean_cosine', float('nan')):.3f}"
            + (f"; {report['train_usable']} training images with ≥1 final tag" if "train_usable" in report else ""))
