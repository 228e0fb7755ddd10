"""features: a pretrained backbone's pooled features for every cached image, keyed by image id.

Batched, with a progress bar and bounded memory (images stream from the memory-mapped cache), and
resumable: completed chunks survive a killed run. Outputs in ``out``: ``features.npy`` (float32
``(n, dim)``), ``ids.json`` and ``meta.json`` (backbone, preprocessing, dimension).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from tagcode.config import StageConfig
from tagcode.progress import warn


class Config(StageConfig):
    """Options of the features stage."""

    prepared: str = Field("data/prepared", description="output directory of the prepare stage")
    backbone: str = Field("efficientnet_lite0", description="backbone: efficientnet_lite0, alexnet_caffe "
                                                            "(weights .npy), alexnet (weights .pth) or tiny_cnn")
    weights: str | None = Field(None, description="weights file for backbones that need one")
    allow_pickle: bool = Field(False, description="trust a pickled weights file (alexnet_caffe's .npy): "
                                                  "unpickling can run arbitrary code, so it is refused otherwise")
    input_size: int | None = Field(None, ge=16, description="network input side; None: the backbone's default")
    batch_size: int = Field(64, ge=1, description="images per forward pass")
    device: str = Field("auto", description="auto (CUDA when present), cpu or cuda[:N]")
    resume: bool = Field(True, description="resume from completed chunks of an interrupted run")
    progress: bool | None = Field(None, description="show a progress bar (None: when stderr is a terminal "
                                                    "and CI is not set)")
    shard: int = Field(0, ge=0, description="this run's shard of the cached images (scale-out; merge_shards "
                                            "joins the shards)")
    num_shards: int = Field(1, ge=1, description="number of shards: contiguous, batch-aligned ranges of the "
                                                 "cache, so the merged result equals an unsharded run")
    out: str = Field("data/features", description="output directory")


def run(cfg: Config) -> dict[str, Any]:
    """Run the stage; returns the extraction summary."""
    from tagcode.backbones import create_backbone
    from tagcode.backbones.extract import extract_features
    from tagcode.data.cache import ImageCache
    from tagcode.data.shards import shard_slice
    kwargs: dict[str, Any] = {"size": cfg.input_size} if cfg.input_size else {}
    if cfg.allow_pickle:
        kwargs["allow_pickle"] = True
    backbone = create_backbone(cfg.backbone, weights=cfg.weights, **kwargs)
    cache = ImageCache(Path(cfg.prepared) / "images")
    pre = backbone.preprocess
    needed = pre.resize or pre.size
    if needed > cache.size:
        warn(f"features: {cfg.backbone} at input size {pre.size} resizes images to {needed} px, but the cache "
             f"holds {cache.size} px thumbnails (prepare image_size), so they are upsampled; raise image_size "
             f"to ≥ {needed} or lower input_size")
    ids = None
    if cfg.num_shards > 1:
        ids = list(cache.ids[shard_slice(len(cache), cfg.num_shards, cfg.shard, align=cfg.batch_size)])
    return extract_features(cache, backbone, cfg.out, batch_size=cfg.batch_size, device=cfg.device,
                            resume=cfg.resume, progress=cfg.progress, ids=ids)


def format_summary(summary: dict[str, Any]) -> str:
    """A short human summary for the CLI."""
    return f"features: {summary['n']} images × {summary['dim']} dims in {summary['seconds']:.1f} s"
