"""MIRFlickr-25K in its official layout (``root`` a local path or ``s3://bucket/prefix``)::

    mirflickr/im{N}.jpg                             the images
    mirflickr/meta/tags/tags{N}.txt                 user tags of image N, one per line (may be empty)
    mirflickr/doc/common_tags.txt                   1,386 lines "tag count": the vocabulary, in file order
    mirflickr25k_annotations_v080/<concept>.txt     one image number N per line (24 concepts)
    mirflickr25k_annotations_v080/<concept>_r1.txt  the stricter "relevant" annotation (14 of them)

``image_id`` is the number N as a string (``"961"``); records are sorted by N. Images, tags and labels are
joined by N, never by listing order. ``vocabulary`` is the first token of each line of ``common_tags.txt``.
``label_names`` are the 24 concepts (and with the option below the 14 ``_r1`` files), alphabetical; files
that are not concepts (``README.txt``) are ignored. The official layout is known, so a missing
``common_tags.txt`` or a missing concept file is a one-line error naming it, never a silently lost label.

Option ``relevant_r1`` (False): also use the ``_r1`` files as label columns (38 instead of 24; sharing ≥1
label is the same relation either way, since each ``_r1`` list is a subset of its concept).

Skipped: a tag file whose image is missing ("image missing"), a second file for the same N (``im01.jpg``
next to ``im1.jpg``). Noted (the image is used): an image without a tag file (kept, no tags), a tag,
annotation or vocabulary file that is not UTF-8 (read as Latin-1). A non-number in an annotation file is a
one-line error.
"""

from __future__ import annotations

import re

from tagcode.data.sources._text import read_lines, read_text
from tagcode.data.sources.base import SOURCES, SourceData, io_map, make_records, relative_files
from tagcode.errors import TagcodeError
from tagcode.io import exists, join

IMAGES_DIR = "mirflickr"
ANNOTATIONS_DIR = "mirflickr25k_annotations_v080"
_IMAGE = re.compile(r"^mirflickr/im(\d+)\.jpg$", re.I)
_TAGS = re.compile(r"^mirflickr/meta/tags/tags(\d+)\.txt$")
_ANNOTATION = re.compile(rf"^{ANNOTATIONS_DIR}/([^/]+)\.txt$")
NOT_CONCEPTS = frozenset({"readme"})
CONCEPTS = ("animals", "baby", "bird", "car", "clouds", "dog", "female", "flower", "food", "indoor", "lake", "male",
            "night", "people", "plant_life", "portrait", "river", "sea", "sky", "structures", "sunset", "transport",
            "tree", "water")
RELEVANT_R1 = ("baby", "bird", "car", "clouds", "dog", "female", "flower", "male", "night", "people", "portrait",
               "river", "sea", "tree")


def _by_number(files: dict[str, str], pattern: re.Pattern[str], skipped: list[tuple[str, str]]) -> dict[int, str]:
    """``{N: uri}`` for the relative paths matching ``pattern``; a repeated N is reported and ignored."""
    out: dict[int, str] = {}
    for rel, uri in files.items():
        if m := pattern.match(rel):
            n = int(m.group(1))
            if n in out:
                skipped.append((uri, f"second file for image number {n}; {out[n]} kept"))
            else:
                out[n] = uri
    return out


def _read_tags(uri: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The tags of one tag file (stripped, non-empty lines) and any decoding note (Latin-1 fallback)."""
    notes: list[tuple[str, str]] = []
    return read_lines(uri, notes, required=False), notes


@SOURCES.register("mirflickr")
def mirflickr(root: str, relevant_r1: bool = False) -> SourceData:
    """Read MIRFlickr-25K from its official layout, joining images, tags and concepts by image number."""
    files = relative_files(root)
    skipped: list[tuple[str, str]] = []
    images = _by_number(files, _IMAGE, skipped)
    if not images:
        raise TagcodeError(f"{root}: no {IMAGES_DIR}/im<N>.jpg images found (expected the official MIRFlickr "
                           f"layout: {IMAGES_DIR}/, {ANNOTATIONS_DIR}/ under the root)")
    tag_files = _by_number(files, _TAGS, skipped)
    notes: list[tuple[str, str]] = []
    annotations = {m.group(1): uri for rel, uri in files.items()
                   if (m := _ANNOTATION.match(rel)) and m.group(1).lower() not in NOT_CONCEPTS}
    label_names = sorted([*CONCEPTS, *(f"{c}_r1" for c in RELEVANT_R1 if relevant_r1)])
    missing = [c for c in label_names if c not in annotations]
    if missing:
        more = f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
        shown = ", ".join(f"{c}.txt" for c in missing[:5]) + more
        raise TagcodeError(f"{join(root, ANNOTATIONS_DIR)}: missing concept file(s) {shown}; the official layout "
                           f"has all {len(label_names)}, and a missing one would silently lose that label")
    members: dict[int, list[str]] = {}
    for concept in label_names:
        for token in read_text(annotations[concept], notes, required=False).split():
            if not token.isdigit():
                raise TagcodeError(f"{annotations[concept]}: expected one image number per line, got {token!r}")
            members.setdefault(int(token), []).append(concept)
    vocab_uri = join(root, IMAGES_DIR, "doc", "common_tags.txt")
    if not exists(vocab_uri):
        raise TagcodeError(f"{vocab_uri}: missing; the MIRFlickr vocabulary (common_tags.txt) is part of the "
                           "official layout")
    vocabulary = [ln.split()[0] for ln in read_lines(vocab_uri, notes)]
    numbers = sorted(images)
    with_tags = [n for n in numbers if n in tag_files]
    read = dict(zip(with_tags, io_map(_read_tags, [tag_files[n] for n in with_tags], root), strict=True))
    rows = []
    for n in numbers:
        tags, tag_notes = read.get(n, ([], [(images[n], "no tag file; kept with no tags")]))
        notes += tag_notes
        rows.append({"image_id": str(n), "image_uri": images[n], "tags": tags, "labels": members.get(n, [])})
    skipped += [(tag_files[n], "image missing") for n in sorted(set(tag_files) - set(images))]
    return SourceData(records=make_records(rows, root), label_names=label_names, vocabulary=vocabulary,
                      skipped=skipped, notes=notes)
