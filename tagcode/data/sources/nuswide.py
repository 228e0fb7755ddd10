r"""NUS-WIDE (``root`` a local path or ``s3://bucket/prefix``) in either of its two common layouts, chosen by
which list file exists.

**21-concept distribution** (DPSH/ADSH; WSHRCA uses it), when ``database_img.txt`` is at the root::

    images/NNNN_<photoId>.jpg                         flat image folder (list paths are relative to root)
    database_img.txt, test_img.txt                    image paths (193,734 and 2,100 in the full set)
    database_label_onehot.txt, test_label_onehot.txt  0/1 rows (21 columns), aligned with the lists
    NUS_WID_Tags/All_Tags.txt                         "photoId tag tag …" per photo: the raw user tags
    Concepts21.txt (optional)                         the concept names, one per line; else c00, c01, …

Records carry ``origin``: ``train`` for ``database_img.txt``, ``test`` for ``test_img.txt`` (the
``official`` split protocol uses it).

**Official layout** (WSDHQ reads it), when ``ImageList/Imagelist.txt`` exists instead::

    ImageList/Imagelist.txt                 one path per image, e.g. C:\ImageData\Flickr\actor\0001_2124494179.jpg
    ImageList/TestImagelist.txt (optional)  the official test images → ``origin`` ``test`` (others ``train``)
    Flickr/<concept>/NNNN_<photoId>.jpg     the images (list paths are taken after their last ``Flickr``
                                            component; a path without one is relative to ``Flickr/``)
    Groundtruth/AllLabels/Labels_<c>.txt    one 0/1 per line per concept, aligned with Imagelist.txt
    NUS_WID_Tags/All_Tags.txt               raw user tags by photo id, used when present; otherwise
    AllTags1k.txt                           0/1 rows over TagList1k, aligned with Imagelist.txt

Metadata files (``All_Tags.txt``, ``AllTags1k.txt``, ``TagList1k.txt``, ``Final_Tag_List.txt``,
``Concepts21.txt``) are looked for at the root, then in ``NUS_WID_Tags/``, ``Concepts/`` and
``ConceptsList/``. Option ``vocabulary``: ``taglist1k`` (default, ``TagList1k.txt``, 1,000 tags; WSDHQ),
``final5018`` (``Final_Tag_List.txt``, 5,018 tags; WSHRCA) or ``none``; the first token of each line, in
file order.

The photo id is the token after the first underscore of the *file name* (directories are ignored) without
the extension; ``image_id`` is the file stem (``0001_2124494179``); records are sorted by it (digit runs
numerically). Images listed but missing are reported skips (circulating copies commonly lack some), as is
a file listed twice; photos without a tag line are kept with no tags and noted. Row-count mismatches
between a list and its label or tag file are one-line errors.
"""

from __future__ import annotations

import posixpath
import re

import numpy as np

from tagcode.data.sources._text import read_lines
from tagcode.data.sources.base import SOURCES, SourceData, make_records, relative_files
from tagcode.errors import TagcodeError
from tagcode.io import join, read_bytes

VOCAB_FILES = {"taglist1k": "TagList1k.txt", "final5018": "Final_Tag_List.txt"}
VOCAB_OPTIONS = (*VOCAB_FILES, "none")
SEARCH_DIRS = ("", "NUS_WID_Tags", "Concepts", "ConceptsList")
CHUNK_BYTES = 8 << 20
_LABELS = re.compile(r"^Groundtruth/AllLabels/Labels_(.+)\.txt$")
_ALLOWED = np.zeros(256, bool)
_ALLOWED[list(b"01 \t\r\n")] = True


def photo_id(path: str) -> str:
    """Flickr photo id of a NUS-WIDE file: the token after the first underscore of the file name."""
    stem = posixpath.splitext(posixpath.basename(path.replace("\\", "/")))[0]
    return stem.split("_", 1)[1] if "_" in stem else stem


def _rows01(chunk: bytes, uri: str) -> np.ndarray:
    """Parse whole lines of a 0/1 text matrix (blank lines ignored) into a uint8 array."""
    a = np.frombuffer(chunk, np.uint8)
    allowed = _ALLOWED[a]
    if not allowed.all():
        raise TagcodeError(f"{uri}: not a 0/1 matrix (found {chr(chunk[int(np.argmin(allowed))])!r})")
    digit = (a == 48) | (a == 49)
    if (digit[1:] & digit[:-1]).any():
        raise TagcodeError(f"{uri}: not a 0/1 matrix (a value with several digits)")
    per_line = np.bincount(np.cumsum(a == 10, dtype=np.int64)[digit])
    widths = per_line[per_line > 0]
    if len(widths) and widths.min() != widths.max():
        raise TagcodeError(f"{uri}: rows have between {widths.min()} and {widths.max()} values")
    return (a[digit] - 48).reshape(len(widths), int(widths[0]) if len(widths) else 0)


def binary_matrix(uri: str) -> np.ndarray:
    """A whitespace-separated 0/1 text file as a uint8 matrix, parsed in chunks (AllTags1k is ~540 MB)."""
    data = read_bytes(uri)
    parts, start = [], 0
    while start < len(data):
        end = data.find(b"\n", start + CHUNK_BYTES)
        end = len(data) if end < 0 else end + 1
        parts.append(_rows01(data[start:end], uri))
        start = end
    parts = [p for p in parts if len(p)]
    if not parts:
        raise TagcodeError(f"{uri}: file is empty")
    if len({p.shape[1] for p in parts}) > 1:
        raise TagcodeError(f"{uri}: rows have different numbers of values")
    return np.concatenate(parts)


def _find(files: dict[str, str], name: str) -> str | None:
    """URI of metadata file ``name`` at the root or in one of SEARCH_DIRS."""
    for d in SEARCH_DIRS:
        rel = f"{d}/{name}" if d else name
        if rel in files:
            return files[rel]
    return None


def _vocab(files: dict[str, str], name: str, root: str, notes: list[tuple[str, str]]) -> list[str]:
    """First token of each line of vocabulary file ``name``."""
    uri = _find(files, name)
    if uri is None:
        raise TagcodeError(f"{root}: {name} not found (looked in the root and {', '.join(SEARCH_DIRS[1:])}/)")
    return [ln.split()[0] for ln in read_lines(uri, notes)]


def _all_tags(files: dict[str, str], notes: list[tuple[str, str]]) -> dict[str, list[str]] | None:
    """Raw tags by photo id from All_Tags.txt (first line per id wins); None when the file is absent."""
    uri = _find(files, "All_Tags.txt")
    if uri is None:
        return None
    out: dict[str, list[str]] = {}
    for ln in read_lines(uri, notes):
        pid, *tags = ln.split()
        out.setdefault(pid, tags)
    return out


def _aligned(uri: str, n: int, width: int | None = None) -> np.ndarray:
    """A 0/1 matrix that must have ``n`` rows (and ``width`` columns) to line up with an image list."""
    m = binary_matrix(uri)
    if len(m) != n:
        raise TagcodeError(f"{uri}: {len(m)} rows but the image list has {n}")
    if width is not None and m.shape[1] != width:
        raise TagcodeError(f"{uri}: {m.shape[1]} values per row, expected {width}")
    return m


def _dpsh21(root: str, files: dict[str, str], notes: list[tuple[str, str]]) -> tuple[list[dict], list[str]]:
    """Rows of the 21-concept distribution (database list, then test list)."""
    raw = _all_tags(files, notes)
    if raw is None:
        raise TagcodeError(f"{root}: NUS_WID_Tags/All_Tags.txt not found (the raw tags of the 21-concept layout)")
    parts = [(p, o) for p, o in (("database", "train"), ("test", "test")) if f"{p}_img.txt" in files]
    listed = {p: [posixpath.normpath(x.replace("\\", "/")) for x in read_lines(files[f"{p}_img.txt"], notes)]
              for p, _ in parts}
    label_files = {p: files.get(f"{p}_label_onehot.txt", "") for p, _ in parts}
    for p, uri in label_files.items():
        if not uri:
            raise TagcodeError(f"{join(root, f'{p}_label_onehot.txt')}: not found (labels for {p}_img.txt)")
    labels = {p: _aligned(label_files[p], len(listed[p])) for p, _ in parts}
    width = labels["database"].shape[1]
    names_uri = _find(files, "Concepts21.txt")
    names = read_lines(names_uri, notes) if names_uri else [f"c{j:02d}" for j in range(width)]
    if len(names) != width:
        raise TagcodeError(f"{names_uri}: {len(names)} names for {width} label columns")
    rows = []
    for p, origin in parts:
        if labels[p].shape[1] != width:
            raise TagcodeError(f"{label_files[p]}: {labels[p].shape[1]} columns, database labels have {width}")
        for path, row in zip(listed[p], labels[p], strict=True):
            rows.append({"image_id": posixpath.splitext(posixpath.basename(path))[0], "image_uri": path,
                         "tags": raw.get(photo_id(path)), "labels": [names[j] for j in np.flatnonzero(row)],
                         "origin": origin})
    return rows, names


def _under_flickr(path: str) -> str:
    """An Imagelist path relative to the ``Flickr`` folder (``C:\\ImageData\\Flickr\\a\\1_2.jpg`` → ``a/1_2.jpg``)."""
    parts = posixpath.normpath(path.replace("\\", "/")).split("/")
    cut = max((i for i, p in enumerate(parts) if p.lower() == "flickr"), default=-1)
    return "/".join(parts[cut + 1:])


def _official(root: str, files: dict[str, str], notes: list[tuple[str, str]]) -> tuple[list[dict], list[str]]:
    """Rows of the official layout (Imagelist order)."""
    images = [_under_flickr(p) for p in read_lines(files["ImageList/Imagelist.txt"], notes)]
    concepts = sorted((m.group(1), uri) for rel, uri in files.items() if (m := _LABELS.match(rel)))
    if not concepts:
        raise TagcodeError(f"{root}: no Groundtruth/AllLabels/Labels_<concept>.txt files found")
    names = [c for c, _ in concepts]
    labels = np.concatenate([_aligned(uri, len(images), width=1) for _, uri in concepts], axis=1)
    raw = _all_tags(files, notes)
    if raw is not None:
        tags = [raw.get(photo_id(p)) for p in images]
    else:
        tags_uri = _find(files, "AllTags1k.txt")
        if tags_uri is None:
            raise TagcodeError(f"{root}: neither NUS_WID_Tags/All_Tags.txt nor AllTags1k.txt found (the tags)")
        vocab1k = _vocab(files, VOCAB_FILES["taglist1k"], root, notes)
        bow = _aligned(tags_uri, len(images), width=len(vocab1k))
        tags = [[vocab1k[j] for j in np.flatnonzero(row)] for row in bow]
    test_uri = files.get("ImageList/TestImagelist.txt")
    test = {_under_flickr(p) for p in read_lines(test_uri, notes)} if test_uri else None
    rows = []
    for path, row, t in zip(images, labels, tags, strict=True):
        rec = {"image_id": posixpath.splitext(posixpath.basename(path))[0], "image_uri": f"Flickr/{path}",
               "tags": t, "labels": [names[j] for j in np.flatnonzero(row)]}
        if test is not None:
            rec["origin"] = "test" if path in test else "train"
        rows.append(rec)
    return rows, names


@SOURCES.register("nuswide")
def nuswide(root: str, vocabulary: str = "taglist1k") -> SourceData:
    """Read NUS-WIDE from the 21-concept distribution or the official layout (picked from the files present)."""
    if vocabulary not in VOCAB_OPTIONS:
        raise TagcodeError(f"nuswide: option 'vocabulary' must be one of {list(VOCAB_OPTIONS)}, got {vocabulary!r}")
    files = relative_files(root)
    notes: list[tuple[str, str]] = []
    vocab = None if vocabulary == "none" else _vocab(files, VOCAB_FILES[vocabulary], root, notes)
    if "database_img.txt" in files:
        rows, label_names = _dpsh21(root, files, notes)
    elif "ImageList/Imagelist.txt" in files:
        rows, label_names = _official(root, files, notes)
    else:
        raise TagcodeError(f"{root}: neither database_img.txt (21-concept layout) nor ImageList/Imagelist.txt "
                           "(official layout) found")
    skipped = [(join(root, r["image_uri"]), "image missing") for r in rows if r["image_uri"] not in files]
    present = [{**r, "image_uri": files[r["image_uri"]]} for r in rows if r["image_uri"] in files]
    if not present:
        raise TagcodeError(f"{root}: none of the {len(rows)} listed NUS-WIDE images exists")
    for r in present:
        if r["tags"] is None:
            notes.append((r["image_uri"], f"photo id {photo_id(r['image_uri'])} has no All_Tags.txt line; kept "
                                          "with no tags"))
            r["tags"] = []
    records = make_records(present, root, skipped)
    return SourceData(records=records, label_names=label_names, vocabulary=vocab, skipped=skipped, notes=notes)
