"""A tiny folder-format dataset for integration tests: coloured images, noisy tags, class labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

# Four classes; their tags are common English words (so GloVe covers them) plus a shared noisy pool.
CLASSES = {
    "red": ["red", "crimson", "apple", "cherry"],
    "blue": ["blue", "sky", "ocean", "water"],
    "green": ["green", "grass", "leaf", "forest"],
    "yellow": ["yellow", "sun", "banana", "lemon"],
}
COLOURS = {"red": (200, 30, 30), "blue": (30, 60, 200), "green": (30, 170, 50), "yellow": (230, 210, 40)}
NOISE_TAGS = ["photo", "nice", "day", "canon"]


def build_tiny_dataset(root: Path, n_per_class: int = 70, seed: int = 0, mix: float = 0.0) -> Path:
    """Write ``root/images/*.png`` and ``root/tags.jsonl`` (image, tags, labels) and return ``root``.
    ``mix`` > 0 blends each image's colour towards another class's by up to that weight, so classes overlap
    and retrieval methods score differently (with 0 every method reaches mAP 1)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for name, words in CLASSES.items():
        for i in range(n_per_class):
            colour = np.asarray(COLOURS[name], dtype=float)
            if mix:  # no extra draws otherwise: the default dataset stays the same
                weight = rng.uniform(0, mix)
                colour = (1 - weight) * colour + weight * np.asarray(COLOURS[list(COLOURS)[rng.integers(4)]])
            pixels = np.clip(colour + rng.normal(0, 25, (24, 24, 3)), 0, 255).astype(np.uint8)
            rel = f"images/{name}_{i:02d}.png"
            Image.fromarray(pixels).save(root / rel)
            tags = list(rng.choice(words, size=2, replace=False)) + list(rng.choice(NOISE_TAGS, size=1))
            lines.append({"image": rel, "tags": [str(t) for t in tags], "labels": [name]})
    (root / "tags.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return root


def tiny_params(dataset: Path) -> dict:
    """params.yaml sections that run the whole pipeline on the tiny dataset in seconds."""
    return {
        "dataset": None,  # no preset: the sections say everything
        "prepare": {"source": "folder", "root": str(dataset), "protocol": "random", "n_query": 8, "seed": 0,
                    "image_size": 16, "out": "data/prepared"},
        "clean_tags": {"prepared": "data/prepared", "min_freq": 2, "out": "data/tags"},
        "embed_tags": {"tags": "data/tags", "vectors": "glove-6b-50d", "target_size": 0.9, "out": "data/embed"},
        "features": {"prepared": "data/prepared", "backbone": "tiny_cnn", "batch_size": 16, "progress": False,
                     "out": "data/features"},
        "train": {"prepared": "data/prepared", "features": "data/features", "embed": "data/embed", "seed": 0},
        "encode": {"prepared": "data/prepared", "features": "data/features"},
        "evaluate": {"prepared": "data/prepared", "protocols": ["wsdhq", "wshrca"], "p_at": [5]},
        "promote": {"metric": "wsdhq_map_at_5000", "margin": 0.0},
        "report": {"metrics": "metrics", "codes": "codes", "out": "reports"},
    }
