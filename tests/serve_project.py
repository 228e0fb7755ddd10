"""A tiny trained project for the service tests: the tiny dataset through prepare → clean_tags → embed_tags →
features (tiny_cnn) → train → encode, for a WSDHQ (tag-space quantizer) and an ITQ (binary) cell."""

from __future__ import annotations

from pathlib import Path

from tagcode.stages import run_stage
from tests.tiny_dataset import build_tiny_dataset

CELLS = {"wsdhq-8": ("wsdhq", 8, {"iterations": 12, "batch_size": 32, "update_period": 4}),
         "itq-16": ("itq", 16, {})}


def build_serve_project(root: Path) -> Path:
    """Write ``root/{data,models,codes}`` for :data:`CELLS` (tracking off) and return ``root``."""
    ds = build_tiny_dataset(root / "ds", n_per_class=70, mix=0.5)
    data = root / "data"
    run_stage("prepare", {"source": "folder", "root": str(ds), "protocol": "random", "n_query": 8, "seed": 0,
                          "image_size": 16, "out": str(data / "prepared")})
    run_stage("clean_tags", {"prepared": str(data / "prepared"), "min_freq": 2, "out": str(data / "tags")})
    run_stage("embed_tags", {"tags": str(data / "tags"), "vectors": "glove-6b-50d", "target_size": 0.9,
                             "out": str(data / "embed")})
    run_stage("features", {"prepared": str(data / "prepared"), "backbone": "tiny_cnn", "batch_size": 64,
                           "progress": False, "out": str(data / "features")})
    for name, (method, bits, options) in CELLS.items():
        run_stage("train", {"method": method, "bits": bits, "options": options, "prepared": str(data / "prepared"),
                            "features": str(data / "features"), "embed": str(data / "embed"), "tracking": False,
                            "progress": False, "out": str(root / "models" / name)})
        run_stage("encode", {"model": str(root / "models" / name), "prepared": str(data / "prepared"),
                             "features": str(data / "features"), "out": str(root / "codes" / name)})
    return root
