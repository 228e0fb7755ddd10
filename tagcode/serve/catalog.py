"""The dataset side of the service, shared by every champion: ids, splits and tags, thumbnails, ground truth,
tag vectors and the features' backbone.

Everything is read through the project's readers (``read_manifest``, ``read_labels``, ``ImageCache``,
``read_embedding``, ``create_backbone``); nothing here re-reads a stage's files by hand. Ground truth is
used for one thing only: marking which results are relevant to a query that has labels, as ``evaluate``
counts them (sharing at least one label).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tagcode.data.cache import ImageCache
from tagcode.data.images import decode_image
from tagcode.data.manifest import read_labels, read_manifest
from tagcode.errors import TagcodeError
from tagcode.io import read_json
from tagcode.tags.clean import CleanRules, normalize_tag
from tagcode.tags.embedding import TagEmbedding, read_embedding

MAX_TAGS_SHOWN = 12  # tags listed per result; the page has room for about this many


class ServeError(TagcodeError):
    """A request the service refuses, with the HTTP status it answers (always 4xx) and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Backbone:
    """The backbone the features stage used (name, preprocessing and weights checked against its meta.json),
    turning one decoded upload into one feature row."""

    name: str
    net: Any

    def features(self, image: np.ndarray) -> np.ndarray:
        """``(1, dim)`` float32 features of one ``(size, size, 3)`` uint8 image, as the features stage computes."""
        import torch

        from tagcode.backbones.transforms import to_tensor

        with torch.inference_mode():  # concurrent requests forward in parallel (read-only weights)
            out = self.net(to_tensor(image[None], self.net.preprocess))
        return out.float().numpy()


def load_backbone(features: str | Path, weights: str | None = None, allow_pickle: bool = False) -> Backbone:
    """The backbone named in ``<features>/meta.json`` at its recorded input size; its weights must be the ones
    the features were computed with (same sha256), else a one-line error. ``allow_pickle`` as the features
    stage's (CaffeNet's pickled ``.npy``)."""
    from tagcode.backbones import create_backbone
    from tagcode.backbones.extract import weights_fingerprint

    meta_path = Path(features) / "meta.json"
    if not meta_path.is_file():
        raise TagcodeError(f"{features}: no meta.json (run `tagcode features` first)")
    meta = read_json(meta_path)
    size = int(meta["preprocess"]["size"])
    kwargs: dict[str, Any] = {"allow_pickle": True} if allow_pickle else {}
    net = create_backbone(meta["backbone"], weights=weights, **kwargs)
    if net.preprocess.size != size:
        net = create_backbone(meta["backbone"], weights=weights, size=size, **kwargs)
    if weights_fingerprint(net) != meta.get("weights_sha256"):
        raise TagcodeError(f"{meta_path}: backbone {meta['backbone']!r} weights differ from the ones the features "
                           "were computed with; give the same weights file (--backbone-weights)")
    return Backbone(name=meta["backbone"], net=net)


class Catalog:
    """Per image id: split, tags, ground truth and thumbnail; plus the tag vectors and the backbone (optional)."""

    def __init__(self, prepared: str | Path, *, embed: str | Path | None = None, features: str | Path | None = None,
                 backbone_weights: str | None = None, backbone_allow_pickle: bool = False,
                 max_pixels: int = 40_000_000) -> None:
        manifest_path = Path(prepared) / "manifest.parquet"
        frame = read_manifest(manifest_path).frame
        self.split = dict(zip(frame["image_id"], frame["split"], strict=True))
        self.tags = dict(zip(frame["image_id"], frame["tags"], strict=True))
        self.query_ids = [str(i) for i in frame.loc[frame["split"] == "query", "image_id"]]
        labels, _ = read_labels(manifest_path, list(frame["image_id"]))
        self._label_row = {str(i): k for k, i in enumerate(frame["image_id"])}
        self.labels = labels.astype(bool)
        self.cache = ImageCache(Path(prepared) / "images")
        self.max_pixels = max_pixels
        self.embedding: TagEmbedding | None = read_embedding(embed) if embed is not None else None
        self._tag_index = {} if self.embedding is None else {n: i for i, n in enumerate(self.embedding.names)}
        self.backbone: Backbone | None = (load_backbone(features, backbone_weights, backbone_allow_pickle)
                                          if features is not None else None)

    def has_labels(self, image_id: str) -> bool:
        """True when ``image_id`` has ground truth (at least one label)."""
        row = self._label_row.get(image_id)
        return row is not None and bool(self.labels[row].any())

    def relevant(self, query_id: str | None, result_ids: list[str]) -> list[bool | None]:
        """Per result: shares a label with the query (evaluate's relevance), or None when either side has no
        ground truth (an upload, a tag query, a synthetic database row)."""
        if query_id is None or not self.has_labels(query_id):
            return [None] * len(result_ids)
        q = self.labels[self._label_row[query_id]]
        out: list[bool | None] = []
        for i in result_ids:
            row = self._label_row.get(i)
            out.append(None if row is None else bool((self.labels[row] & q).any()))
        return out

    def image_tags(self, image_id: str) -> list[str]:
        """The image's user tags (as prepared), at most :data:`MAX_TAGS_SHOWN`."""
        return [str(t) for t in self.tags.get(image_id, [])][:MAX_TAGS_SHOWN]

    def thumbnail_png(self, image_id: str) -> bytes:
        """The cached thumbnail of ``image_id`` as PNG bytes; an unknown id is a 404 ServeError."""
        from PIL import Image

        try:
            row = self.cache.index_of([image_id])
        except TagcodeError:
            raise ServeError(404, f"no image {image_id!r} in the image cache") from None
        buf = io.BytesIO()
        Image.fromarray(self.cache.get(row)[0]).save(buf, format="PNG")
        return buf.getvalue()

    def decode_upload(self, data: bytes) -> np.ndarray:
        """An uploaded image decoded exactly as ``prepare`` decodes dataset images (same size, same safety);
        anything unusable (not an image, truncated, a decompression bomb) is a 422 ServeError."""
        from tagcode.data.images import ImageDecodeError

        try:
            return decode_image(data, self.cache.size, name="upload", max_pixels=self.max_pixels)
        except ImageDecodeError as exc:
            raise ServeError(422, str(exc)) from None

    def tag_query(self, text: str) -> tuple[np.ndarray, list[str]]:
        """The unit mean of the tag vectors of the comma-separated tags in ``text`` (normalised as clean_tags
        does) and the tags used; no tags, or a tag not in the final vocabulary, is a 4xx ServeError."""
        import difflib

        if self.embedding is None:
            raise ServeError(400, "tag search is off: the service was started without tag vectors (--embed)")
        rules = CleanRules()
        words = [w for part in text.split(",") for w in normalize_tag(part, rules)]
        if not words:
            raise ServeError(422, "no tags given: type one or more tags, separated by commas")
        unknown = [w for w in words if w not in self._tag_index]
        if unknown:
            near = difflib.get_close_matches(unknown[0], list(self._tag_index), n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise ServeError(404, f"unknown tag {unknown[0]!r}: not in the {len(self._tag_index)}-tag vocabulary{hint}")
        vectors = self.embedding.vectors[[self._tag_index[w] for w in words]]
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)
        q = vectors.mean(axis=0)
        return (q / max(float(np.linalg.norm(q)), 1e-12)).astype(np.float32)[None], words

    def vocabulary(self) -> list[str]:
        """The final tag vocabulary a tag search accepts (empty without tag vectors)."""
        return list(self._tag_index)
