"""WSDHQ tag-embedding calibration (spec §2.2) on the real MIRFlickr-25K and NUS-WIDE tags with GloVe 6B 50d.

Per dataset: OOV counts per lookup policy; the triplet-weighted mean positive–negative tag cosine and the
implied initial embedding loss for raw, centred and graph-enhanced vectors; and the whole proposal (embed →
enhance → DBSCAN merge with eps calibrated to WSDHQ's merged sizes 1,178 / 928). The reference logs imply a
mean cosine of 0.10–0.11 (initial loss 0.89–0.90) with word2vec-300d.
Run: ``.venv/bin/python bench/tag_calibration.py [shared dir]``; writes ``bench/results/tag_calibration.{md,json}``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from tagcode.tags.graph import (
    calibrate_eps,
    correlation_graph,
    enhance,
    margin_statistics,
    merge_matrix,
    merge_synonyms,
)
from tagcode.tags.vectors import embed_vocabulary, load_vectors

SHARED = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared"
OUT = Path(__file__).parent / "results"
REFERENCE_COS = 0.105
GRID = [(tau, alpha) for tau in (0.3, 0.4, 0.5) for alpha in (0.2, 0.3, 0.5)]
TAU, ALPHA = 0.4, 0.3


@dataclass
class Dataset:
    """A vocabulary, its training image×tag matrix, WSDHQ's merged size and the OOV policy used to reach it."""

    name: str
    vocab: list[str]
    train: sp.csr_matrix
    target: int
    source: str
    concepts: tuple[str, ...] = ()

    def tag_lists(self) -> list[list[str]]:
        """Each training image's tags, for the Word2Vec OOV policy."""
        m = self.train
        return [[self.vocab[j] for j in m.indices[a:b]] for a, b in zip(m.indptr[:-1], m.indptr[1:], strict=True)]


def datasets() -> list[Dataset]:
    """MIRFlickr (first 16,000 of the 20,015 cleaned images as training) and NUS-WIDE tc10 (5,000 training)."""
    mir = np.load(SHARED / "data" / "mirflickr20015_tags_labels.npz")
    nus = np.load(SHARED / "data" / "nuswide_tc10_tags_labels.npz")
    return [Dataset("MIRFlickr-25K", [str(t) for t in mir["tag_vocab"]], sp.csr_matrix(mir["tags_bow"][:16000]),
                    1178, "compose", tuple(str(c) for c in mir["concepts"])),
            Dataset("NUS-WIDE tc10", [str(t) for t in nus["tag_vocab"]], sp.csr_matrix(nus["train_tags_bow"]),
                    928, "drop")]


def embed_kwargs(ds: Dataset, source: str) -> dict[str, Any]:
    """embed_vocabulary options for an OOV policy label: drop, compose (compounds, then drop) or trained."""
    return {"drop": {"oov": "drop"}, "compose": {"oov": "drop", "compose": True},
            "trained": {"oov": "trained", "train_tag_lists": ds.tag_lists()}}[source]


def embed(ds: Dataset, kv: Any, **kw: Any) -> tuple[np.ndarray, sp.csr_matrix, list[str], dict[str, Any]]:
    """Kept rows, the training matrix over them, their names and the embedding report."""
    emb, kept, rep = embed_vocabulary(ds.vocab, kv, **kw)
    return emb[kept], sp.csr_matrix(ds.train[:, kept]), [t for t, k in zip(ds.vocab, kept, strict=True) if k], rep


def stats(emb: np.ndarray, tags: sp.csr_matrix) -> dict[str, Any]:
    """Margin statistics rounded for the report."""
    s = margin_statistics(emb, tags)
    return {"tags": len(emb), "mean_cosine": round(s["mean_cosine"], 4), "initial_loss": round(s["initial_loss"], 4),
            "mean_pairwise_cosine": round(s["mean_pairwise_cosine"], 4)}


def merge(ds: Dataset, emb: np.ndarray, tags: sp.csr_matrix, names: list[str]) -> dict[str, Any]:
    """Enhance (TAU, ALPHA), calibrate eps to the target size, merge: figures, groups and step timings."""
    t0 = time.perf_counter()
    graph = correlation_graph(tags, tau=TAU)
    enhanced = enhance(emb, graph, alpha=ALPHA)
    t1 = time.perf_counter()
    eps = calibrate_eps(enhanced, ds.target)
    t2 = time.perf_counter()
    merged, groups = merge_synonyms(enhanced, eps=eps)
    t3 = time.perf_counter()
    big = sorted((g for g in groups if len(g) > 1), key=lambda g: (-len(g), g[0]))
    named = [[names[i] for i in g] for g in big]
    return {**stats(merged, merge_matrix(tags, groups)), "eps": round(eps, 4), "enhanced": stats(enhanced, tags),
            "seconds_graph_enhance": round(t1 - t0, 3), "seconds_calibrate": round(t2 - t1, 2),
            "seconds_merge": round(t3 - t2, 3), "groups": named,
            "concept_groups": [g for g in named if len(set(g) & set(ds.concepts)) > 1]}


def centre_for(target: float, measure: Any) -> float:
    """The centring strength in [0, 1] at which ``measure(strength)`` (a mean cosine, decreasing) hits ``target``."""
    lo, hi = 0.0, 1.0
    for _ in range(14):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if measure(mid) > target else (lo, mid)
    return round((lo + hi) / 2, 3)


def vocabulary_figures(ds: Dataset, kv: Any) -> dict[str, Any]:
    """OOV counts per policy, with examples and timings."""
    t = time.perf_counter()
    rep = embed(ds, kv, oov="drop")[3]
    seconds = time.perf_counter() - t
    composed = embed(ds, kv, **embed_kwargs(ds, "compose"))[3]
    t = time.perf_counter()
    trained = embed(ds, kv, **embed_kwargs(ds, "trained"))[3]
    return {"drop": rep["n_oov"], "examples": rep["oov_examples"], "compose": composed["n_oov"],
            "composed_examples": composed["variant_examples"], "trained_filled": trained["oov_filled"],
            "trained_alignment_cosine": round(trained.get("alignment_cosine", float("nan")), 3),
            "seconds_embed": round(seconds, 3), "seconds_embed_trained": round(time.perf_counter() - t, 2)}


def run(ds: Dataset, kv: Any) -> dict[str, Any]:
    """Every measurement for one dataset."""
    res: dict[str, Any] = {"vocabulary": len(ds.vocab), "train_images": ds.train.shape[0], "target": ds.target,
                           "source": ds.source, "concepts": ds.concepts, "oov": vocabulary_figures(ds, kv)}
    emb, tags, _, _ = embed(ds, kv, oov="drop")
    t = time.perf_counter()
    res["raw"] = stats(emb, tags)
    res["seconds_margin_statistics"] = round(time.perf_counter() - t, 4)
    beta = centre_for(REFERENCE_COS, lambda c: margin_statistics(*embed(ds, kv, oov="drop", center=c)[:2])
                      ["mean_cosine"])
    res["center_raw"] = beta
    res["centred"] = {c: stats(*embed(ds, kv, oov="drop", center=c)[:2]) for c in (0.25, 0.5, beta, 1.0)}
    res["enhanced"] = {f"{tau} {alpha}": {**stats(enhance(emb, g, alpha=alpha), tags), "edges": int(g.nnz),
                                          "tags_with_edges": int((np.diff(g.indptr) > 0).sum())}
                       for tau, alpha in GRID for g in [correlation_graph(tags, tau=tau)]}
    kw = embed_kwargs(ds, ds.source)
    gamma = centre_for(REFERENCE_COS, lambda c: merge(ds, *embed(ds, kv, center=c, **kw)[:3])["mean_cosine"])
    res["center_final"] = gamma
    res["pipelines"] = {}
    for source in ("drop", "compose", "trained"):
        for center in (0.0, beta, gamma):
            e, m, names, _ = embed(ds, kv, center=center, **embed_kwargs(ds, source))
            res["pipelines"][f"oov={source}, center={center}"] = (
                merge(ds, e, m, names) if len(e) > ds.target
                else {"tags": len(e), "note": f"only {len(e)} tags have vectors"})
    return res


def _groups_text(groups: list[list[str]], n: int) -> str:
    """A few merged groups for the report."""
    return "; ".join("{" + ", ".join(g[:6]) + (", …" if len(g) > 6 else "") + "}" for g in groups[:n])


def markdown_dataset(name: str, r: dict[str, Any]) -> list[str]:
    """The report section of one dataset."""
    o = r["oov"]
    composed = ", ".join(f"{k} → {v}" for k, v in list(o["composed_examples"].items())[:5])
    lines = [f"## {name}: {r['vocabulary']} tags, {r['train_images']} training images, target {r['target']}", "",
             f"- OOV in GloVe: **{o['drop']}** with exact/case/separator variants (e.g. "
             f"{', '.join(o['examples'][:8])}); **{o['compose']}** with `compose=True` (e.g. {composed}); "
             f"`oov='trained'` fills {o['trained_filled']} (Procrustes anchor cosine {o['trained_alignment_cosine']}).",
             f"- Timings: embed {o['seconds_embed']} s, embed with a Word2Vec trained on the tags "
             f"{o['seconds_embed_trained']} s, margin statistics {r['seconds_margin_statistics']} s.", "",
             "| vectors (oov=drop) | tags | mean cos | init loss | pairwise |", "|---|---:|---:|---:|---:|"]
    rows = [("raw GloVe", r["raw"])] + [(f"centred, strength {c}", s) for c, s in r["centred"].items()]
    lines += [f"| {k} | {s['tags']} | {s['mean_cosine']:.3f} | {s['initial_loss']:.3f} | "
              f"{s['mean_pairwise_cosine']:.3f} |" for k, s in rows]
    lines += ["", "Graph enhancement of raw GloVe (oov=drop):", "",
              "| tau | alpha | edges | tags with edges | mean cos | init loss |", "|---:|---:|---:|---:|---:|---:|"]
    for k, s in r["enhanced"].items():
        lines.append(f"| {k.replace(' ', ' | ')} | {s['edges']} | {s['tags_with_edges']} | {s['mean_cosine']:.3f} | "
                     f"{s['initial_loss']:.3f} |")
    lines += ["", f"Full proposal: embed → enhance (tau {TAU}, alpha {ALPHA}) → DBSCAN (cosine, min_samples 1) with "
              f"eps calibrated to {r['target']}. Centring {r['center_raw']} puts raw GloVe at mean cos "
              f"{REFERENCE_COS}; {r['center_final']} puts the final merged tags there.", "",
              "| vectors | tags in | enhanced mean cos | eps | merged tags | merged mean cos | merged init loss "
              "| calibrate s | merge s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for k, p in r["pipelines"].items():
        if "note" in p:
            lines.append(f"| {k} | {p['tags']} | – | – | – ({p['note']}) | – | – | – | – |")
            continue
        lines.append(f"| {k} | {p['enhanced']['tags']} | {p['enhanced']['mean_cosine']:.3f} | {p['eps']:.4f} | "
                     f"{p['tags']} | {p['mean_cosine']:.3f} | {p['initial_loss']:.3f} | {p['seconds_calibrate']} | "
                     f"{p['seconds_merge']} |")
    key = f"oov={r['source']}, center={r['center_final']}"
    shown = r["pipelines"][key]
    lines += ["", f"Merged groups ({key}): {sum(len(g) for g in shown['groups'])} tags in {len(shown['groups'])} "
              f"groups; the largest: {_groups_text(shown['groups'], 16)}."]
    if r["concepts"]:
        joined = _groups_text(shown["concept_groups"], 10) or "none"
        lines.append(f"Groups joining two ground-truth concept names ({', '.join(r['concepts'])}): {joined}.")
    return [*lines, ""]


def findings(results: dict[str, dict[str, Any]]) -> list[str]:
    """What the figures say, and the defaults they suggest (numbers taken from ``results``)."""
    mir, nus = results["MIRFlickr-25K"], results["NUS-WIDE tc10"]
    key = f"{TAU} {ALPHA}"

    def final(r: dict[str, Any]) -> dict[str, Any]:
        return r["pipelines"][f"oov={r['source']}, center={r['center_final']}"]

    return [
        "## Findings and recommended defaults", "",
        f"- Raw GloVe 50d is more anisotropic than word2vec-300d: mean pos–neg cosine {mir['raw']['mean_cosine']:.3f} "
        f"(MIRFlickr) and {nus['raw']['mean_cosine']:.3f} (NUS-WIDE) against the reference 0.10–0.11, i.e. an "
        f"initial loss of {mir['raw']['initial_loss']:.2f} / {nus['raw']['initial_loss']:.2f} instead of 0.89–0.90; "
        f"enhancement (tau {TAU}, alpha {ALPHA}) raises it to {mir['enhanced'][key]['mean_cosine']:.3f} / "
        f"{nus['enhanced'][key]['mean_cosine']:.3f}.",
        "- Full centring (`center=True`) overshoots to a mean cosine of 0.000: every margin becomes ≈1, which "
        "flattens the adaptive margin. Partial centring reproduces the reference scale: strength "
        f"{mir['center_final']} (MIRFlickr) / {nus['center_final']} (NUS-WIDE) gives a final merged mean cosine of "
        f"{final(mir)['mean_cosine']:.3f} / {final(nus)['mean_cosine']:.3f} (initial loss "
        f"{final(mir)['initial_loss']:.3f} / {final(nus)['initial_loss']:.3f}). Recommended: make `center` a "
        "strength in [0, 1] with default 0.4 (between the two), or calibrate it to a target mean cosine of 0.105.",
        f"- tau {TAU}, alpha {ALPHA} (the middle of the spec's ranges): {mir['enhanced'][key]['tags_with_edges']} / "
        f"{nus['enhanced'][key]['tags_with_edges']} tags get edges; the margin scale moves by "
        f"{mir['enhanced'][key]['mean_cosine'] - mir['raw']['mean_cosine']:+.3f} / "
        f"{nus['enhanced'][key]['mean_cosine'] - nus['raw']['mean_cosine']:+.3f}; alpha 0.5 or tau 0.3 pull tags "
        "together faster. Enhancement also reorders merges towards tags that co-occur (protest/demonstration, "
        "film/movie rise; months and US states, which do not co-occur, stay first).",
        f"- Merging: calibrate eps to the target size rather than fixing it (eps found: {final(mir)['eps']} for "
        f"1,178 MIRFlickr tags, {final(nus)['eps']} for 928 NUS-WIDE tags; it shifts with centring and OOV policy). "
        f"On MIRFlickr only {mir['raw']['tags']} of 1,386 tags have GloVe vectors, so 1,178 is reachable only with "
        "`compose=True` or `oov='trained'`.",
        "- Caveat on merge quality: GloVe similarity is relatedness, not synonymy, so single-linkage DBSCAN merges "
        "co-hyponyms first (months with years, US states, white/black, dog/cat, girl/boy, gold/silver) along "
        "with true synonyms and plurals; composed compounds can join their own part (longexposure/long). No merge "
        "joined two MIRFlickr ground-truth concept names. Consider `merge: false`, or a smaller target, when "
        "retrieval quality matters more than matching WSDHQ's vocabulary size.", ""]


def markdown(results: dict[str, dict[str, Any]], seconds_load: float) -> str:
    """The whole report."""
    head = ["# Tag-embedding calibration (WSDHQ spec §2.2) on real tags, GloVe 6B 50d", "",
            "Produced by `bench/tag_calibration.py` with `tagcode.tags.vectors` / `tagcode.tags.graph`. Reference "
            "(WSDHQ logs, word2vec-300d): mean positive–negative tag cosine 0.10–0.11, initial embedding loss "
            "0.89–0.90; merged vocabulary 1,178 (MIRFlickr) and 928 (NUS-WIDE). 'mean cos' = triplet-weighted mean "
            "of cos(w̄_p, w̄_n) over (training image, positive p, negative n); 'init loss' = 1 − mean cos; "
            "'pairwise' = unweighted mean over tag pairs. Centring strength s subtracts s × the mean word vector.",
            "", f"GloVe load (packaged; cold process, gensim import included): {seconds_load:.2f} s.", ""]
    body = [line for name, r in results.items() for line in markdown_dataset(name, r)]
    return "\n".join(head + body + findings(results))


def main() -> None:
    """Measure both datasets and write the markdown and JSON reports."""
    t = time.perf_counter()
    kv = load_vectors("glove-6b-50d")
    seconds_load = time.perf_counter() - t
    results = {ds.name: run(ds, kv) for ds in datasets()}
    OUT.mkdir(exist_ok=True)
    (OUT / "tag_calibration.json").write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results, seconds_load)
    (OUT / "tag_calibration.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
