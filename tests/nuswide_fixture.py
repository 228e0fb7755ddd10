"""Small NUS-WIDE fixtures in both on-disk layouts, built from the real tc10 tags and labels in ../shared.

The rows are the first ``n`` training images of ``shared/data/nuswide_tc10_tags_labels.npz`` (real file
names, raw tags, tag bag-of-words over TagList1k and 10 label columns); the JPEGs are small generated
images, since no NUS-WIDE pixels exist on the project machines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

TC10_NAMES = [f"tc{j}" for j in range(10)]  # the source files carry no names for the tc10 columns


def nuswide_rows(shared: Path, n: int) -> dict[str, np.ndarray]:
    """The first ``n`` training rows: ``names`` (``images/NNNN_<id>.jpg``), ``tags`` (raw, comma-joined),
    ``bow`` (n × 1000 over ``vocab``) and ``labels`` (n × 10)."""
    z = np.load(shared / "data" / "nuswide_tc10_tags_labels.npz")
    return {"names": z["train_images"][:n].astype(str), "tags": z["train_tags_raw"][:n].astype(str),
            "bow": z["train_tags_bow"][:n], "labels": z["train_labels"][:n], "vocab": z["tag_vocab"].astype(str)}


def _jpeg(path: Path, seed: int) -> None:
    """A small random JPEG at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=80)


def _all_tags(rows: dict[str, np.ndarray]) -> str:
    """All_Tags.txt lines ``photoId tag tag …`` for the rows."""
    return "".join(f"{Path(n).stem.split('_', 1)[1]} {' '.join(t.split(','))}\n"
                   for n, t in zip(rows["names"], rows["tags"], strict=True))


def build_nuswide(shared: Path, root: Path, n_db: int = 48, n_test: int = 12, missing: int = 1,
                  concept_names: bool = False) -> Path:
    """The 21-concept (DPSH/ADSH) layout: ``images/``, ``{database,test}_img.txt``, ``*_label_onehot.txt``,
    ``NUS_WID_Tags/All_Tags.txt`` and ``TagList1k.txt``; the first ``missing`` listed images are absent."""
    rows = nuswide_rows(shared, n_db + n_test)
    for i, name in enumerate(rows["names"]):
        if i >= missing:
            _jpeg(root / name, i)
    for part, sl in (("database", slice(0, n_db)), ("test", slice(n_db, n_db + n_test))):
        (root / f"{part}_img.txt").write_text("\n".join(rows["names"][sl]) + "\n")
        onehot = "".join(" ".join(map(str, r)) + "\n" for r in rows["labels"][sl])
        (root / f"{part}_label_onehot.txt").write_text(onehot)
    (root / "NUS_WID_Tags").mkdir(parents=True, exist_ok=True)
    (root / "NUS_WID_Tags" / "All_Tags.txt").write_text(_all_tags(rows))
    (root / "TagList1k.txt").write_text("\n".join(rows["vocab"]) + "\n")
    if concept_names:
        (root / "Concepts21.txt").write_text("\n".join(TC10_NAMES) + "\n")
    return root


def build_nuswide_official(shared: Path, root: Path, n: int = 60, n_test: int = 12, missing: int = 1,
                           raw_tags: bool = False) -> Path:
    """The official layout: ``Flickr/<concept>/NNNN_<id>.jpg`` (concept = the image's first label),
    ``ImageList/{Imagelist,TestImagelist}.txt`` with Windows paths, ``Groundtruth/AllLabels/Labels_<c>.txt``,
    ``NUS_WID_Tags/{TagList1k,AllTags1k}.txt`` (tab-separated), and ``All_Tags.txt`` when ``raw_tags``."""
    rows = nuswide_rows(shared, n)
    paths = [f"{TC10_NAMES[int(np.flatnonzero(lab)[0])]}/{Path(name).name}"
             for name, lab in zip(rows["names"], rows["labels"], strict=True)]
    for i, rel in enumerate(paths):
        if i >= missing:
            _jpeg(root / "Flickr" / rel, i)
    windows = ["C:\\ImageData\\Flickr\\" + p.replace("/", "\\") for p in paths]
    (root / "ImageList").mkdir(parents=True)
    (root / "ImageList" / "Imagelist.txt").write_text("\r\n".join(windows) + "\r\n")
    (root / "ImageList" / "TestImagelist.txt").write_text("\r\n".join(windows[n - n_test:]) + "\r\n")
    (root / "Groundtruth" / "AllLabels").mkdir(parents=True)
    for j, name in enumerate(TC10_NAMES):
        (root / "Groundtruth" / "AllLabels" / f"Labels_{name}.txt").write_text(
            "".join(f"{v}\n" for v in rows["labels"][:, j]))
    (root / "NUS_WID_Tags").mkdir()
    (root / "NUS_WID_Tags" / "TagList1k.txt").write_text("\n".join(rows["vocab"]) + "\n")
    (root / "NUS_WID_Tags" / "AllTags1k.txt").write_text("".join("\t".join(map(str, r)) + "\n" for r in rows["bow"]))
    if raw_tags:
        (root / "NUS_WID_Tags" / "All_Tags.txt").write_text(_all_tags(rows))
    return root
