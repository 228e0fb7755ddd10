"""A small NUS-WIDE fixture in the 21-concept layout, built from the real tc10 tags and labels in ../shared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def build_nuswide(shared: Path, root: Path, n_db: int = 40, n_test: int = 10, missing: int = 1) -> Path:
    """Write images (generated), list/label files and All_Tags.txt for the first ``n_db + n_test`` images."""
    z = np.load(shared / "data" / "nuswide_tc10_tags_labels.npz")
    names = [str(p) for p in z["train_images"][: n_db + n_test]]
    labels = z["train_labels"][: n_db + n_test]
    tags = [str(t).split(",") for t in z["train_tags_raw"][: n_db + n_test]]
    (root / "images").mkdir(parents=True)
    (root / "NUS_WID_Tags").mkdir()
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        if i < missing:  # listed but absent, as in many circulating copies
            continue
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(root / name)
    for part, sl in (("database", slice(0, n_db)), ("test", slice(n_db, n_db + n_test))):
        (root / f"{part}_img.txt").write_text("\n".join(names[sl]) + "\n")
        (root / f"{part}_label_onehot.txt").write_text("\n".join(" ".join(map(str, r)) for r in labels[sl]) + "\n")
    lines = [f"{Path(n).stem.split('_', 1)[1]} {' '.join(t)}" for n, t in zip(names, tags, strict=True)]
    (root / "NUS_WID_Tags" / "All_Tags.txt").write_text("\n".join(lines) + "\n")
    (root / "TagList1k.txt").write_text("\n".join(str(t) for t in z["tag_vocab"]) + "\n")
    return root
