"""OpenClipArt (the default dataset): Debian ``openclipart-svg`` (tags) + ``openclipart-png`` (pixels).

Layout: ``<root>/svg/<category>/<sub>/…/<name>.svg`` and the same path under ``<root>/png/`` with ``.png``.
User tags are the ``<rdf:li>`` items of each SVG's ``<dc:subject>`` (title words optionally added); the
ground truth is the category tree: an image symlinked into several category directories is multi-label.
Records are keyed by the SVG's real path (``image_id`` = that path relative to ``svg/``, no extension).

Options: ``subset``: ``content`` (default) drops the computer, shapes, unsorted, special, buttons and
logos trees, and every image that also appears in one of them (3,471 images), or ``all`` (7,458);
``min_label_images`` (15): a depth-2 category with fewer images is mapped to its depth-1 parent (53
labels on the content subset); ``title_words`` (False): add the title's words to the tags. Every category
name is declared in ``blocked_tags`` so clean_tags can drop tags that would leak the ground truth.
"""

from __future__ import annotations

import collections
import html
import os
import re
from pathlib import Path

from tagcode.data.sources.base import SOURCES, SourceData, make_records
from tagcode.errors import TagcodeError
from tagcode.io import is_s3

NON_CONTENT = ("computer", "shapes", "unsorted", "special", "buttons", "logos")
_SUBJECT = re.compile(rb"<dc:subject>(.*?)</dc:subject>", re.S)
_LI = re.compile(rb"<rdf:li>(.*?)</rdf:li>", re.S)
_TITLE = re.compile(rb"<dc:title>(.*?)</dc:title>", re.S)
_WORD = re.compile(r"[^\W_]+")


def parse_svg_metadata(data: bytes) -> tuple[list[str], str]:
    """Tags (``<dc:subject>`` list items) and title of an SVG, decoded leniently."""
    subject = _SUBJECT.search(data)
    items = _LI.findall(subject.group(1)) if subject else []
    tags = [html.unescape(t.decode("utf-8", "replace")).strip().lower() for t in items]
    title = _TITLE.search(data)
    return [t for t in tags if t], html.unescape(title.group(1).decode("utf-8", "replace")).strip() if title else ""


def _label(path: str, counts: collections.Counter, min_images: int) -> str:
    parts = path.split("/")
    depth2 = "/".join(parts[:2])
    return depth2 if len(parts) >= 2 and counts[depth2] >= min_images else parts[0]


@SOURCES.register("openclipart")
def openclipart(root: str = "/usr/share/openclipart", subset: str = "content", min_label_images: int = 15,
                title_words: bool = False) -> SourceData:
    """Read OpenClipArt from the Debian packages' directory tree."""
    if is_s3(root):
        raise TagcodeError(f"{root}: the openclipart source reads the local Debian packages; use the folder "
                           "source for clip art stored in S3")
    if subset not in ("content", "all"):
        raise TagcodeError(f"openclipart: subset must be 'content' or 'all', got {subset!r}")
    svg_root, png_root = Path(root) / "svg", Path(root) / "png"
    if not svg_root.is_dir():
        raise TagcodeError(f"{svg_root}: not found (apt-get install openclipart-svg openclipart-png)")
    cats: dict[str, set[str]] = collections.defaultdict(set)
    for dirpath, _, files in os.walk(svg_root):
        rel_dir = os.path.relpath(dirpath, svg_root)
        for f in files:
            if f.endswith(".svg") and rel_dir != ".":
                real = os.path.realpath(os.path.join(dirpath, f))
                cats[real].add(rel_dir)
    skipped: list[tuple[str, str]] = []
    keep = {}
    for real, dirs in cats.items():
        if subset == "all" or not any(d.split("/")[0] in NON_CONTENT for d in dirs):
            keep[real] = dirs
    depth2 = collections.Counter("/".join(d.split("/")[:2]) for dirs in keep.values() for d in
                                 {"/".join(x.split("/")[:2]) for x in dirs})
    rows = []
    for real in sorted(keep):
        rel = os.path.relpath(real, svg_root)
        png = png_root / (rel[:-4] + ".png")
        if not png.is_file():
            skipped.append((rel, "no matching PNG"))
            continue
        try:
            tags, title = parse_svg_metadata(Path(real).read_bytes())
        except OSError as exc:
            skipped.append((rel, f"unreadable SVG ({exc.strerror})"))
            continue
        if title_words:
            tags = tags + [w.lower() for w in _WORD.findall(title)]
        labels = sorted({_label(d, depth2, min_label_images) for d in keep[real]})
        rows.append({"image_id": rel[:-4], "image_uri": str(png), "tags": tags, "labels": labels})
    if not rows:
        raise TagcodeError(f"{svg_root}: no SVG images found")
    records = make_records(rows, str(svg_root))
    label_names = sorted({x for v in records["labels"] for x in v})
    blocked = sorted({w for name in label_names for part in name.split("/")
                      for w in (part.lower(), part.lower().replace("_", " ").replace("-", " "))})
    return SourceData(records=records, label_names=label_names, blocked_tags=blocked, skipped=skipped)
