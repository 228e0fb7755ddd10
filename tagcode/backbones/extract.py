"""Batched, resumable feature extraction from the image cache, keyed by image id.

Completed chunks are saved in ``<out>.partial/`` as they finish, so a killed run resumes where it
stopped; the final ``<out>/`` (``features.npy``, ``ids.json``, ``meta.json``) is published atomically.
Memory stays bounded: images stream from the memory-mapped cache one batch at a time.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tagcode.backbones.base import Backbone, to_tensor
from tagcode.data.cache import ImageCache
from tagcode.errors import TagcodeError
from tagcode.io import atomic_path, read_json


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; otherwise the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise TagcodeError(f"unknown device {device!r} (use auto, cpu or cuda[:N])") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TagcodeError(f"device {device!r} requested but CUDA is not available")
    return dev


def extract_features(cache: ImageCache, backbone: Backbone, out_dir: str | Path, *, batch_size: int = 64,
                     device: str = "auto", resume: bool = True, progress: bool = True,
                     ids: Sequence[str] | None = None, batches_per_chunk: int = 8,
                     on_chunk: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run ``backbone`` over the cached images (or only ``ids``) and write features keyed by image id."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    rows = np.arange(len(cache)) if ids is None else cache.index_of(list(ids))
    row_ids = [str(i) for i in cache.ids[rows]]
    signature = hashlib.sha256(json.dumps([type(backbone).__name__, str(backbone.preprocess), row_ids]).encode())
    partial = out_dir.with_name(out_dir.name + ".partial")
    if partial.exists() and (not resume or _signature(partial) != signature.hexdigest()):
        shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    (partial / "signature").write_text(signature.hexdigest())
    dev = resolve_device(device)
    model = backbone.to(dev).eval()
    chunk = batch_size * batches_per_chunk
    n_chunks = (len(rows) + chunk - 1) // chunk
    done = sorted(int(p.stem.split("-")[1]) for p in partial.glob("chunk-*.npy"))
    start = time.perf_counter()
    with torch.inference_mode(), tqdm(total=len(rows), disable=not progress, desc="features", unit="img") as bar:
        bar.update(min(len(done) * chunk, len(rows)))
        for c in range(n_chunks):
            if c in done:
                continue
            part = [model(to_tensor(cache.get(rows[s:s + batch_size]), backbone.preprocess).to(dev)).float().cpu()
                    for s in range(c * chunk, min((c + 1) * chunk, len(rows)), batch_size)]
            feats = torch.cat(part).numpy()
            bad = ~np.isfinite(feats).all(axis=1)
            if bad.any():
                raise TagcodeError(f"image {row_ids[c * chunk + int(np.argmax(bad))]!r}: backbone produced NaN/inf")
            with atomic_path(partial / f"chunk-{c:05d}.npy") as tmp, open(tmp, "wb") as fh:
                np.save(fh, feats)
            bar.update(len(feats))
            if on_chunk is not None:
                on_chunk(c)
    x = np.concatenate([np.load(partial / f"chunk-{c:05d}.npy") for c in range(n_chunks)]) if n_chunks else \
        np.zeros((0, backbone.feature_dim), np.float32)
    meta = {"backbone": type(backbone).__name__, "preprocess": vars(backbone.preprocess), "dim": int(x.shape[1]),
            "n": len(row_ids), "dtype": "float32"}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        np.save(tmp / "features.npy", x.astype(np.float32))
        (tmp / "ids.json").write_text(json.dumps(row_ids))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    shutil.rmtree(partial)
    return {"n": len(row_ids), "dim": int(x.shape[1]), "seconds": time.perf_counter() - start,
            "resumed_chunks": len(done), "device": str(dev)}


def _signature(partial: Path) -> str | None:
    sig = partial / "signature"
    return sig.read_text() if sig.is_file() else None


def load_features(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, X)`` from a features directory; duplicate ids or non-finite values are one-line errors."""
    path = Path(path)
    try:
        x = np.load(path / "features.npy", mmap_mode="r")
    except FileNotFoundError:
        raise TagcodeError(f"{path}: no features.npy (run `tagcode features` first)") from None
    ids = np.asarray(read_json(path / "ids.json"), dtype=object)
    if len(ids) != len(x):
        raise TagcodeError(f"{path}: {len(ids)} ids for {len(x)} feature rows")
    if len(set(ids)) != len(ids):
        raise TagcodeError(f"{path}: duplicate image ids in ids.json")
    x = np.asarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        row = int(np.argmax(~np.isfinite(x).all(axis=1)))
        raise TagcodeError(f"{path}: NaN/inf feature for image {ids[row]!r}")
    return ids, x
