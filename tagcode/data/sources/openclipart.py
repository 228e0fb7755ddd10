"""OpenClipArt (the default dataset): Debian ``openclipart-svg`` (tags) + ``openclipart-png`` (pixels).

Layout (local only; ``root`` defaults to ``/usr/share/openclipart``)::

    svg/<category>/<sub>/…/<name>.svg   user tags and title in the SVG's RDF metadata
    png/<category>/<sub>/…/<name>.png   the same image as PNG (what ``image_uri`` points to)

An image filed under several categories is one real file plus symlinks (file or directory symlinks), so
records are keyed by the SVG's real path: ``image_id`` is that path relative to ``svg/`` without
``.svg`` (e.g. ``animals/birds/owl_01``), and each directory the image appears in adds a category, which
makes the ground truth multi-label. Tags are the stripped, lower-cased ``<rdf:li>`` items of the first
``<dc:subject>`` of the real file (entities unescaped, repeats dropped); an SVG without metadata gives no
tags (118 of the 7,458), one whose metadata is not UTF-8 is decoded with replacement and noted in
``skipped``. Labels: the depth-2 category path (``animals/birds``) when at least ``min_label_images``
images of the subset lie under it, else its depth-1 parent (``animals``). ``blocked_tags`` holds every
component of the label paths, lower-cased, also with ``_``/``-`` read as spaces, so clean_tags can drop
tags that name the ground truth (the leakage filter).

Options:

- ``subset`` (``content``): ``content`` drops every image that appears in the computer, shapes, unsorted,
  special, buttons or logos trees (3,471 images, 53 labels, 1.09 labels per image); ``all`` keeps the
  7,458 images (69 labels).
- ``min_label_images`` (15): the depth-2 label threshold above.
- ``title_words`` (False): also add the lower-cased words of the ``<dc:title>`` to the tags.

SVGs are never rendered: a byte-level regex reads the metadata of all 7,458 files in under a second.
Skipped: a broken symlink, a symlink leading outside ``svg/``, an SVG directly in ``svg/`` (no
category), an unreadable SVG, and an SVG without a matching PNG.
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
SUBSETS = ("content", "all")
_SUBJECT = re.compile(rb"<dc:subject>(.*?)</dc:subject>", re.S)
_LI = re.compile(rb"<rdf:li>(.*?)</rdf:li>", re.S)
_TITLE = re.compile(rb"<dc:title>(.*?)</dc:title>", re.S)
_WORD = re.compile(r"[^\W_]+")


def _text(raw: bytes) -> tuple[str, bool]:
    """Decode XML character data; also say whether it was valid UTF-8."""
    try:
        text, ok = raw.decode("utf-8"), True
    except UnicodeDecodeError:
        text, ok = raw.decode("utf-8", "replace"), False
    return html.unescape(text).strip(), ok


def parse_svg_metadata(data: bytes) -> tuple[list[str], str, bool]:
    """Tags (``<dc:subject>`` list items, lower-cased), title, and whether both were valid UTF-8."""
    subject = _SUBJECT.search(data)
    decoded = [_text(item) for item in (_LI.findall(subject.group(1)) if subject else [])]
    title_match = _TITLE.search(data)
    title, title_ok = _text(title_match.group(1)) if title_match else ("", True)
    tags = [t.lower() for t, _ in decoded if t]
    return tags, title, title_ok and all(ok for _, ok in decoded)


def _revisits(target: str, chain: list[str]) -> bool:
    """True when walking into ``target`` would re-enter a directory of the current walk (a symlink cycle)."""
    return any(c == target or c.startswith(target + os.sep) for c in chain)


def _category_dirs(svg_root: Path, skipped: list[tuple[str, str]]) -> dict[str, set[str]]:
    """Map each SVG's real path (relative to ``svg/``) to the directories it appears in."""
    real_root = os.path.realpath(svg_root)
    cats: dict[str, set[str]] = collections.defaultdict(set)
    for dirpath, dirnames, files in os.walk(svg_root, followlinks=True):
        rel_dir = Path(dirpath).relative_to(svg_root).as_posix()
        real_dir = os.path.realpath(dirpath)
        chain = [os.path.realpath(p) for p in Path(dirpath).parents if svg_root in (p, *p.parents)] + [real_dir]
        dirnames[:] = sorted(d for d in dirnames if not _revisits(os.path.realpath(os.path.join(dirpath, d)), chain))
        for name in sorted(f for f in files if f.lower().endswith(".svg")):
            path = os.path.join(dirpath, name)
            shown = f"{rel_dir}/{name}" if rel_dir != "." else name
            link = os.path.islink(path)
            real = os.path.realpath(path) if link else os.path.join(real_dir, name)
            rel = os.path.relpath(real, real_root).replace(os.sep, "/")
            if link and not os.path.isfile(real):
                skipped.append((shown, "broken symlink"))
            elif rel.startswith("../"):
                skipped.append((shown, "symlink leads outside svg/"))
            elif rel_dir == ".":
                skipped.append((shown, "not in a category directory"))
            else:
                cats[rel].add(rel_dir)
    return cats


def _label(directory: str, depth2_counts: collections.Counter[str], min_images: int) -> str:
    """The depth-2 category path if it is frequent enough, else its depth-1 parent."""
    parts = directory.split("/")
    depth2 = "/".join(parts[:2])
    return depth2 if len(parts) >= 2 and depth2_counts[depth2] >= min_images else parts[0]


def blocked_names(label_names: list[str]) -> list[str]:
    """Every component of the label paths, lower-cased, plus its ``_``/``-`` → space spellings."""
    out = set()
    for part in (p.lower() for name in label_names for p in name.split("/")):
        out |= {part, part.replace("_", " "), part.replace("-", " "), part.replace("_", " ").replace("-", " ")}
    return sorted(out)


@SOURCES.register("openclipart")
def openclipart(root: str = "/usr/share/openclipart", subset: str = "content", min_label_images: int = 15,
                title_words: bool = False) -> SourceData:
    """Read OpenClipArt from the Debian packages' directory tree (tags from SVG metadata, labels from folders)."""
    if is_s3(root):
        raise TagcodeError(f"{root}: the openclipart source reads the local Debian packages; put clip art in S3 "
                           "as a folder dataset instead (source 'folder')")
    if subset not in SUBSETS:
        raise TagcodeError(f"openclipart: option 'subset' must be one of {list(SUBSETS)}, got {subset!r}")
    if min_label_images < 1:
        raise TagcodeError(f"openclipart: option 'min_label_images' must be ≥ 1, got {min_label_images}")
    svg_root, png_root = Path(root) / "svg", Path(root) / "png"
    if not svg_root.is_dir():
        raise TagcodeError(f"{svg_root}: not found (apt-get install openclipart-svg openclipart-png)")
    skipped: list[tuple[str, str]] = []
    notes: list[tuple[str, str]] = []
    cats = _category_dirs(svg_root, skipped)
    keep = {rel: dirs for rel, dirs in cats.items()
            if subset == "all" or not any(d.split("/")[0] in NON_CONTENT for d in dirs)}
    depth2 = collections.Counter(p for dirs in keep.values()
                                 for p in {"/".join(d.split("/")[:2]) for d in dirs if "/" in d})
    rows = []
    for rel in sorted(keep):
        png = png_root / (rel[:-4] + ".png")
        if not png.is_file():
            skipped.append((rel, "no matching PNG"))
            continue
        try:
            data = (svg_root / rel).read_bytes()
        except OSError as exc:
            skipped.append((rel, f"unreadable SVG ({exc.strerror})"))
            continue
        tags, title, utf8 = parse_svg_metadata(data)
        if not utf8:
            notes.append((rel, "metadata not UTF-8; decoded with replacement characters"))
        if title_words:
            tags += _WORD.findall(title.lower())
        labels = sorted({_label(d, depth2, min_label_images) for d in keep[rel]})
        rows.append({"image_id": rel[:-4], "image_uri": str(png), "tags": tags, "labels": labels})
    if not rows:
        raise TagcodeError(f"{svg_root}: no usable SVG images found (subset {subset!r})")
    records = make_records(rows, str(svg_root))
    label_names = sorted({x for v in records["labels"] for x in v})
    return SourceData(records=records, label_names=label_names, blocked_tags=blocked_names(label_names),
                      skipped=skipped, notes=notes)
