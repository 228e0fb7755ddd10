"""MIRFlickr-25K in the official layout (local path or ``s3://bucket/prefix``)::

    mirflickr/im{N}.jpg                          the images
    mirflickr/meta/tags/tags{N}.txt              user tags of image N, one per line (may be empty)
    mirflickr/doc/common_tags.txt                1,386 lines "tag count": the vocabulary, in file order
    mirflickr25k_annotations_v080/<concept>.txt  image numbers carrying the concept (README.txt ignored)
    mirflickr25k_annotations_v080/<concept>_r1.txt  the stricter "relevant" annotation

``image_id`` is the number N as a string; images, tags and labels are joined by N, never by listing order.
Option ``relevant_r1`` (False): also use the 14 ``_r1`` files as label columns (38 instead of 24; sharing
≥1 label is the same relation either way). A tag file whose image is missing is a reported skip.
"""

from __future__ import annotations

import re

from tagcode.data.sources._text import read_text
from tagcode.data.sources.base import SOURCES, SourceData, make_records
from tagcode.errors import TagcodeError
from tagcode.io import exists, join, list_files

_IMAGE = re.compile(r"(?:^|/)mirflickr/im(\d+)\.jpg$")
_TAGS = re.compile(r"(?:^|/)mirflickr/meta/tags/tags(\d+)\.txt$")
_ANNOT = re.compile(r"(?:^|/)mirflickr25k_annotations_v080/([^/]+)\.txt$")


@SOURCES.register("mirflickr")
def mirflickr(root: str, relevant_r1: bool = False) -> SourceData:
    """Read MIRFlickr-25K from its official layout."""
    files = list_files(root)
    images = {int(m.group(1)): f for f in files if (m := _IMAGE.search(f))}
    tag_files = {int(m.group(1)): f for f in files if (m := _TAGS.search(f))}
    annotations = {m.group(1): f for f in files if (m := _ANNOT.search(f)) and m.group(1).lower() != "readme"}
    if not images:
        raise TagcodeError(f"{root}: no mirflickr/im<N>.jpg images found (expected the official MIRFlickr layout)")
    problems: list[tuple[str, str]] = []
    concepts = sorted(c for c in annotations if relevant_r1 or not c.endswith("_r1"))
    members: dict[int, list[str]] = {}
    for concept in concepts:
        for line in read_text(annotations[concept], problems, required=False).split():
            if not line.isdigit():
                raise TagcodeError(f"{annotations[concept]}: expected one image number per line, got {line!r}")
            members.setdefault(int(line), []).append(concept)
    vocab_uri = join(root, "mirflickr", "doc", "common_tags.txt")
    vocabulary = ([ln.split()[0] for ln in read_text(vocab_uri, problems).splitlines() if ln.strip()]
                  if exists(vocab_uri) else None)
    rows = []
    for n in sorted(images):
        tags = ([t.strip() for t in read_text(tag_files[n], problems, required=False).splitlines() if t.strip()]
                if n in tag_files else [])
        rows.append({"image_id": str(n), "image_uri": images[n], "tags": tags, "labels": members.get(n, [])})
    skipped = problems + [(tag_files[n], "image missing") for n in sorted(set(tag_files) - set(images))]
    return SourceData(records=make_records(rows, root), label_names=concepts, vocabulary=vocabulary,
                      skipped=skipped)
