"""Which container image runs which stage (built from docker/; override the registry at compile time)."""

from __future__ import annotations

import os

REGISTRY = os.environ.get("TAGCODE_IMAGE_REGISTRY", "ghcr.io/tagcode")
VERSION = os.environ.get("TAGCODE_IMAGE_VERSION", "0.1.0")

# features and train (torch) run in the CUDA image; the rest in the CPU image, prepare in the data image.
STAGE_IMAGES = {
    "prepare": "tagcode-data",
    "clean_tags": "tagcode-cpu",
    "embed_tags": "tagcode-cpu",
    "features": "tagcode-cuda",
    "train": "tagcode-cuda",
    "encode": "tagcode-cpu",
    "evaluate": "tagcode-cpu",
    "promote": "tagcode-cpu",
    "report": "tagcode-cpu",
    "merge_shards": "tagcode-cpu",
}


def image_for(stage: str) -> str:
    """Full image reference for ``stage``."""
    return f"{REGISTRY}/{STAGE_IMAGES[stage]}:{VERSION}"
