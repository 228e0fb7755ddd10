"""NUS-WIDE (local path or ``s3://bucket/prefix``), in either of its two common layouts.

**21-concept distribution** (DPSH/ADSH; WSHRCA uses it), chosen when ``database_img.txt`` exists::

    images/NNNN_<photoId>.jpg                         flat image folder
    database_img.txt, test_img.txt                    image paths (193,734 and 2,100 in the full set)
    database_label_onehot.txt, test_label_onehot.txt  0/1 rows, 21 columns, aligned with the lists
    NUS_WID_Tags/All_Tags.txt                         "photoId tag tag …" per photo (raw user tags)
    Concepts21.txt (optional)                         the 21 concept names, one per line

**Official layout** (WSDHQ reads it), chosen otherwise::

    ImageList/Imagelist.txt                 image paths like ``actor\\0001_2124494179.jpg`` under ``Flickr/``
    Groundtruth/AllLabels/Labels_<c>.txt    one 0/1 per line per concept, aligned with Imagelist
    AllTags1k.txt                           0/1 rows over TagList1k, aligned with Imagelist

Vocabularies (option ``vocabulary``: ``taglist1k`` (default), ``final5018`` or ``none``): ``TagList1k.txt``
and ``Final_Tag_List.txt``, looked for at the root, in ``NUS_WID_Tags/`` and in ``Concepts/``. The photo id
is the token after the first underscore of the *file name*. ``image_id`` is the file stem. Images listed
but missing are reported skips (copies of NUS-WIDE commonly lack some). The 21-concept layout records
``origin`` (``train`` for the database list, ``test`` for the test list) for the ``official`` split.
"""

from __future__ import annotations

import posixpath

from tagcode.data.sources._text import read_text
from tagcode.data.sources.base import SOURCES, SourceData, make_records
from tagcode.errors import TagcodeError
from tagcode.io import exists, join, list_files

VOCAB_FILES = {"taglist1k": "TagList1k.txt", "final5018": "Final_Tag_List.txt"}


def photo_id(path: str) -> str:
    """Flickr photo id of a NUS-WIDE file: the token after the first underscore of the file name."""
    stem = posixpath.splitext(posixpath.basename(path.replace("\\", "/")))[0]
    return stem.split("_", 1)[1] if "_" in stem else stem


def _find(root: str, name: str) -> str | None:
    for sub in ("", "NUS_WID_Tags", "Concepts"):
        uri = join(root, sub, name) if sub else join(root, name)
        if exists(uri):
            return uri
    return None


def _lines(uri: str, problems: list[tuple[str, str]]) -> list[str]:
    return [ln.strip() for ln in read_text(uri, problems).splitlines() if ln.strip()]


def _matrix(uri: str, problems: list[tuple[str, str]], n: int) -> list[list[int]]:
    rows = [[int(float(x)) for x in ln.split()] for ln in _lines(uri, problems)]
    if len(rows) != n:
        raise TagcodeError(f"{uri}: {len(rows)} rows but the image list has {n}")
    return rows


def _raw_tags(root: str, problems: list[tuple[str, str]]) -> dict[str, list[str]]:
    uri = _find(root, "All_Tags.txt")
    if uri is None:
        raise TagcodeError(f"{root}: NUS_WID_Tags/All_Tags.txt not found")
    out = {}
    for ln in _lines(uri, problems):
        pid, *tags = ln.split()
        out[pid] = tags
    return out


@SOURCES.register("nuswide")
def nuswide(root: str, vocabulary: str = "taglist1k") -> SourceData:
    """Read NUS-WIDE from the 21-concept distribution or the official layout."""
    if vocabulary not in (*VOCAB_FILES, "none"):
        raise TagcodeError(f"nuswide: vocabulary must be one of {[*VOCAB_FILES, 'none']}, got {vocabulary!r}")
    problems: list[tuple[str, str]] = []
    vocab = None
    if vocabulary != "none":
        uri = _find(root, VOCAB_FILES[vocabulary])
        if uri is None:
            raise TagcodeError(f"{root}: {VOCAB_FILES[vocabulary]} not found (root, NUS_WID_Tags/ or Concepts/)")
        vocab = [ln.split()[0] for ln in _lines(uri, problems)]
    present = set(list_files(root))
    if exists(join(root, "database_img.txt")):
        records, label_names = _dpsh21(root, problems)
    else:
        records, label_names = _official(root, problems, vocab)
    skipped = problems + [(r["image_uri"], "image missing") for r in records if r["image_uri"] not in present]
    rows = [r for r in records if r["image_uri"] in present]
    if not rows:
        raise TagcodeError(f"{root}: none of the listed NUS-WIDE images exists")
    return SourceData(records=make_records(rows, root), label_names=label_names, vocabulary=vocab, skipped=skipped)


def _dpsh21(root: str, problems: list[tuple[str, str]]) -> tuple[list[dict], list[str]]:
    names_uri = _find(root, "Concepts21.txt")
    raw = _raw_tags(root, problems)
    records: list[dict] = []
    label_names: list[str] = []
    for part, origin in (("database", "train"), ("test", "test")):
        images = _lines(join(root, f"{part}_img.txt"), problems)
        labels = _matrix(join(root, f"{part}_label_onehot.txt"), problems, len(images))
        width = len(labels[0]) if labels else 0
        label_names = _lines(names_uri, problems) if names_uri else [f"c{j:02d}" for j in range(width)]
        if len(label_names) != width:
            raise TagcodeError(f"{names_uri}: {len(label_names)} names for {width} label columns")
        for path, row in zip(images, labels, strict=True):
            records.append({"image_id": posixpath.splitext(posixpath.basename(path))[0],
                            "image_uri": join(root, path), "tags": raw.get(photo_id(path), []),
                            "labels": [label_names[j] for j, v in enumerate(row) if v], "origin": origin})
    return records, label_names


def _official(root: str, problems: list[tuple[str, str]], vocab: list[str] | None) -> tuple[list[dict], list[str]]:
    list_uri = join(root, "ImageList", "Imagelist.txt")
    if not exists(list_uri):
        raise TagcodeError(f"{root}: neither database_img.txt (21-concept layout) nor ImageList/Imagelist.txt "
                           "(official layout) found")
    images = [p.replace("\\", "/") for p in _lines(list_uri, problems)]
    gt = sorted(f for f in list_files(join(root, "Groundtruth", "AllLabels")) if f.endswith(".txt"))
    label_names = [posixpath.basename(f)[len("Labels_"):-4] for f in gt]
    columns = [[int(x) for x in _lines(f, problems)] for f in gt]
    for f, col in zip(gt, columns, strict=True):
        if len(col) != len(images):
            raise TagcodeError(f"{f}: {len(col)} lines but the image list has {len(images)}")
    tags_uri = join(root, "AllTags1k.txt")
    if exists(tags_uri):
        if vocab is None or len(vocab) != 1000:
            raise TagcodeError(f"{tags_uri}: needs the TagList1k vocabulary (vocabulary='taglist1k')")
        bow = _matrix(tags_uri, problems, len(images))
        tags = [[vocab[j] for j, v in enumerate(row) if v] for row in bow]
    else:
        raw = _raw_tags(root, problems)
        tags = [raw.get(photo_id(p), []) for p in images]
    records = [{"image_id": posixpath.splitext(posixpath.basename(p))[0], "image_uri": join(root, "Flickr", p),
                "tags": t, "labels": [label_names[c] for c in range(len(gt)) if columns[c][i]]}
               for i, (p, t) in enumerate(zip(images, tags, strict=True))]
    return records, label_names
