"""Dataset presets: one name selects the settings a dataset's papers use, for every stage they concern.

A preset fills the ``prepare`` (source, root, options, split protocol, cached image size), ``clean_tags``
(vocabulary, stop list) and ``features`` (backbone input size) sections; params.yaml's own sections and
then command-line options override it. Select one with the top-level params.yaml key ``dataset:`` or
``--dataset`` on the ``prepare``, ``clean-tags`` and ``features`` commands.

The MIRFlickr and NUS-WIDE roots default to ``datasets/mirflickr`` and ``datasets/nuswide`` (put or link the
official layout there, or set ``prepare.root``: a local path or ``s3://bucket/prefix``).

Each real dataset has a paper-size preset and a ``_subset`` one whose protocol scales the paper's sizes to
the images present (the same shuffle, the same query : train proportions), for a subset or a quick run.

Input size: the MIRFlickr and NUS-WIDE presets use 224 px (cache 256 px, the shorter side EfficientNet's
224/0.875 centre crop needs). On 960 real MIRFlickr photos, 128 px cost 0.03–0.05 mAP@all against 224 px
on the same images (issue 9's measurement; not re-measured here, as no MIRFlickr images at that scale are
available on the project machines). OpenClipArt keeps the demo's 128 px (clip art thumbnails), and
Fashion-MNIST mosaics (56 px of content) are cached at 128 px.
"""

from __future__ import annotations

import difflib
from typing import Any

from tagcode.errors import TagcodeError

_MIRFLICKR: dict[str, dict[str, Any]] = {
    "prepare": {"source": "mirflickr", "root": "datasets/mirflickr", "protocol": "wshrca", "image_size": 256},
    "clean_tags": {"vocabulary": "source", "stop_list": "mirflickr"},
    "features": {"input_size": 224},
}
_NUSWIDE: dict[str, dict[str, Any]] = {
    "prepare": {"source": "nuswide", "root": "datasets/nuswide", "protocol": "wshrca_nuswide", "image_size": 256},
    "clean_tags": {"vocabulary": "source"},
    "features": {"input_size": 224},
}

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "openclipart": {
        "prepare": {"source": "openclipart", "root": "/usr/share/openclipart", "options": {"subset": "content"},
                    "protocol": "random", "image_size": 146},  # Lite0 at 128 px resizes to 146, then crops
        "clean_tags": {"block_category_names": True},
        "features": {"input_size": 128},
    },
    "mirflickr": _MIRFLICKR,
    "mirflickr_subset": {**_MIRFLICKR, "prepare": {**_MIRFLICKR["prepare"], "protocol": "wshrca_scaled"}},
    "nuswide": _NUSWIDE,
    "nuswide_subset": {**_NUSWIDE, "prepare": {**_NUSWIDE["prepare"], "protocol": "wshrca_nuswide_scaled"}},
    "fashion_mnist": {
        "prepare": {"source": "fashion_mnist", "root": "/usr/share/datasets/fashion-mnist", "protocol": "official",
                    "image_size": 146},
        "features": {"input_size": 128},
    },
}
SECTIONS = ("prepare", "clean_tags", "features")  # the stages a preset may set


def preset(name: str) -> dict[str, dict[str, Any]]:
    """The sections of preset ``name``; an unknown name is a one-line error with the closest one."""
    if not isinstance(name, str) or name not in PRESETS:
        close = difflib.get_close_matches(str(name), PRESETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise TagcodeError(f"unknown dataset preset {name!r}{hint}; known: {', '.join(PRESETS)}")
    return PRESETS[name]


def apply_preset(name: str | None, section: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (a params section) on top of preset ``name``'s settings for ``section`` (None: unchanged)."""
    if name is None:
        return dict(values)
    return {**preset(name).get(section, {}), **values}
