"""The service's settings: what ``tagcode serve`` loads and where it listens.

Kept apart from the app so the CLI can build its options from these fields without importing FastAPI or torch.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MAX_UPLOAD = 8 << 20  # bytes; a photo is a few MB, anything larger is refused before decoding


class Settings(BaseModel):
    """What ``tagcode serve`` loads and where it listens (each is a command-line option and an environment
    variable, so a Kubernetes Deployment sets them from its config)."""

    model_config = ConfigDict(extra="forbid")

    champions: list[str] = Field(["models/wsdhq-32"], min_length=1, description="champions to serve, the first "
                                 "is the default: registered model names or models:/<name>@champion URIs (MLflow "
                                 "registry), or model directories written by `tagcode train`")
    codes_root: str = Field("codes", description="where `tagcode encode` wrote a model directory's codes "
                                                 "(codes_root/<model directory name>)")
    prepared: str = Field("data/prepared", description="prepare output: ids, splits, tags, image cache")
    features: str | None = Field("data/features", description="features output: names the backbone for "
                                                              "image uploads (None: no upload search)")
    embed: str | None = Field("data/embed", description="embed_tags output: tag vectors for tag search "
                                                        "(None: no tag search)")
    backbone_weights: str | None = Field(None, description="weights file of the features' backbone, when it "
                                                           "has no packaged weights")
    backbone_allow_pickle: bool = Field(False, description="trust a pickled backbone weights file (alexnet_caffe's "
                                                           ".npy), as the features stage's allow_pickle")
    threads: int = Field(1, ge=1, description="torch, faiss and BLAS threads per request: one query gains nothing "
                                              "from intra-op threads, which on a busy machine cost more than they "
                                              "give; requests run in parallel instead")
    max_upload: int = Field(DEFAULT_MAX_UPLOAD, ge=1, description="largest accepted upload, bytes")
    max_pixels: int = Field(40_000_000, ge=1, description="largest accepted image (width × height), as prepare's")
    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0 in a container)")
    port: int = Field(8000, ge=0, le=65535, description="port to listen on")
