"""Batched, resumable feature extraction from the image cache, keyed by image id.

Output directory ``out_dir``: ``features.npy`` (float32 ``(n, dim)``), ``ids.json`` (row → image id) and
``meta.json`` (backbone, preprocessing, dim, dtype, a fingerprint of the weights), published together by an
atomic directory swap. While running, every ``chunk_batches`` batches are saved to ``out_dir/.partial/``, so
a killed run resumes from its completed chunks; they are reused only when the backbone, its weights, its
preprocessing, the image ids and the chunk size are all unchanged. (Under ``dvc repro`` the features output
must be ``persist: true`` for ``.partial`` to survive to the rerun.) Memory stays bounded: images stream from
the memory-mapped cache one batch at a time and the final array is assembled in a memory-mapped file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tagcode.backbones.base import Backbone
from tagcode.backbones.transforms import to_tensor
from tagcode.data.cache import ImageCache
from tagcode.data.features import read_features
from tagcode.device import resolve_device
from tagcode.errors import TagcodeError, check_unique_ids
from tagcode.io import atomic_path, read_json

FORMAT = "tagcode-features/1"


def weights_fingerprint(module: torch.nn.Module) -> str:
    """sha256 over a module's state dict (names and raw bytes): identifies the exact weights."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def extract_features(cache: ImageCache, backbone: Backbone, out_dir: str | Path, *, batch_size: int = 64,
                     device: str = "auto", resume: bool = True, progress: bool | None = None,
                     ids: Sequence[str] | None = None, chunk_batches: int = 8,
                     on_chunk: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run ``backbone`` (moved to ``device``, in eval mode) over the cached images, or only ``ids`` in that order.

    ``on_chunk(done, total)`` is called after each chunk is saved. Returns ``{n, dim, seconds, resumed_from,
    device}``, ``resumed_from`` being the number of images taken from an interrupted run.
    """
    from tagcode.progress import progress as progress_bar

    if batch_size < 1 or chunk_batches < 1:
        raise TagcodeError(f"batch_size and chunk_batches must be positive, got {batch_size} and {chunk_batches}")
    out_dir = Path(out_dir)
    rows = np.arange(len(cache)) if ids is None else cache.index_of(list(ids))
    row_ids = [str(i) for i in cache.ids[rows]]
    check_unique_ids(row_ids, cache.path)
    n, dim, chunk_rows = len(rows), backbone.feature_dim, batch_size * chunk_batches
    n_chunks = -(-n // chunk_rows)
    meta = {"format": FORMAT, "backbone": backbone.name or type(backbone).__name__,
            "preprocess": asdict(backbone.preprocess), "dim": dim, "dtype": "float32", "n": n,
            "weights_sha256": weights_fingerprint(backbone)}
    signature = {**meta, "ids_sha256": hashlib.sha256("\n".join(row_ids).encode()).hexdigest(),
                 "chunk_rows": chunk_rows}
    partial = out_dir / ".partial"
    done = _open_partial(partial, signature, resume, n_chunks)
    resumed_from = sum(min(chunk_rows, n - c * chunk_rows) for c in done)
    dev = resolve_device(device)
    was_training = backbone.training
    model = backbone.to(dev).eval()
    start = time.perf_counter()
    try:
        with torch.inference_mode(), progress_bar(n, f"features {meta['backbone']}", enabled=progress,
                                                  initial=resumed_from) as bar:
            for c in range(n_chunks):
                if c in done:
                    continue
                parts = []
                for s in range(c * chunk_rows, min((c + 1) * chunk_rows, n), batch_size):
                    batch = rows[s:s + batch_size]
                    parts.append(_forward(model, cache.get(batch), dev, row_ids[s:s + len(batch)], meta))
                    bar.update(len(batch))
                with atomic_path(partial / f"chunk-{c:06d}.npy") as tmp, open(tmp, "wb") as fh:
                    np.save(fh, np.concatenate(parts))
                if on_chunk is not None:
                    on_chunk(c + 1, n_chunks)
    finally:
        backbone.train(was_training)
    _publish(out_dir, partial, n_chunks, row_ids, meta)
    return {"n": n, "dim": dim, "seconds": time.perf_counter() - start, "resumed_from": resumed_from,
            "device": str(dev)}


def _forward(model: Backbone, images: np.ndarray, dev: torch.device, batch_ids: list[str],
             meta: dict[str, Any]) -> np.ndarray:
    """Features of one uint8 batch as float32 numpy; a non-finite row is a one-line error naming the image."""
    out = model(to_tensor(images, model.preprocess, device=dev))
    if tuple(out.shape) != (len(images), meta["dim"]):
        raise TagcodeError(f"backbone {meta['backbone']}: output shape {tuple(out.shape)}, expected "
                           f"({len(images)}, {meta['dim']})")
    feats = out.float().cpu().numpy()
    bad = ~np.isfinite(feats).all(axis=1)
    if bad.any():
        raise TagcodeError(f"image {batch_ids[int(np.argmax(bad))]!r}: backbone {meta['backbone']} produced a "
                           "NaN/inf feature")
    return feats


def _open_partial(partial: Path, signature: dict[str, Any], resume: bool, n_chunks: int) -> set[int]:
    """Indices of reusable completed chunks; a stale or unwanted ``.partial`` is cleared and restarted."""
    sig_file = partial / "signature.json"
    if partial.exists():
        try:
            same = json.loads(sig_file.read_text(encoding="utf-8")) == json.loads(json.dumps(signature))
        except (OSError, ValueError):
            same = False
        if resume and same:
            found = {int(p.name[6:12]) for p in partial.glob("chunk-??????.npy")}
            return {c for c in found if c < n_chunks}
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    sig_file.write_text(json.dumps(signature), encoding="utf-8")
    return set()


def _publish(out_dir: Path, partial: Path, n_chunks: int, row_ids: list[str], meta: dict[str, Any]) -> None:
    """Assemble the chunks into ``features.npy`` (memory-mapped) and swap the finished directory into place."""
    with atomic_path(out_dir) as staged:
        staged.mkdir()
        x = np.lib.format.open_memmap(staged / "features.npy", mode="w+", dtype=np.float32,
                                      shape=(meta["n"], meta["dim"]))
        pos = 0
        for c in range(n_chunks):
            chunk = np.load(partial / f"chunk-{c:06d}.npy")
            x[pos:pos + len(chunk)] = chunk
            pos += len(chunk)
        if pos != meta["n"]:
            raise TagcodeError(f"{partial}: chunks hold {pos} rows, expected {meta['n']}")
        x.flush()
        del x
        (staged / "ids.json").write_text(json.dumps(row_ids), encoding="utf-8")
        (staged / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def merge_features(parts: Sequence[str | Path], out_dir: str | Path) -> dict[str, Any]:
    """Join feature directories of consecutive shards into one, rows in order (the same bytes as an
    unsharded run); the parts must share backbone, preprocessing and weights. Returns the merged meta."""
    if not parts:
        raise TagcodeError("no feature shards to merge")
    metas = [read_json(Path(p) / "meta.json") for p in parts]
    keep = [{k: v for k, v in m.items() if k != "n"} for m in metas]
    if any(k != keep[0] for k in keep[1:]):
        raise TagcodeError(f"{parts[0]}: feature shards disagree on backbone, preprocessing or weights")
    loaded = [read_features(p) for p in parts]
    ids = [str(i) for part_ids, _ in loaded for i in part_ids]
    check_unique_ids(ids, "merged feature shards")
    meta = {**metas[0], "n": len(ids)}
    with atomic_path(out_dir) as staged:
        staged.mkdir()
        with open(staged / "features.npy", "wb") as fh:
            np.save(fh, np.concatenate([x for _, x in loaded]).astype(np.float32, copy=False))
        (staged / "ids.json").write_text(json.dumps(ids), encoding="utf-8")
        (staged / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return meta
