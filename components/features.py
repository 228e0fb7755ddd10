"""KFP components for the features stage: one shard of the cached images, and the merge of the shards."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components.images import image_for


@dsl.component(base_image=image_for("features"), install_kfp_package=False)
def features(params: dict, shard: int, num_shards: int, prepared: Input[Dataset], feats: Output[Dataset]) -> str:
    """Backbone features for one shard of the cached images (tagcode.stages.features)."""
    from tagcode.stages import run_stage

    feats.metadata["shard"] = shard
    return run_stage("features", {**params, "shard": shard, "num_shards": num_shards, "prepared": prepared.path,
                                  "out": feats.path})


@dsl.component(base_image=image_for("merge_shards"), install_kfp_package=False)
def merge_features(parts: Input[list[Dataset]], feats: Output[Dataset]) -> str:
    """Join the feature shards in shard order (tagcode.stages.merge_shards)."""
    from tagcode.stages import run_stage

    ordered = sorted(parts, key=lambda p: int(p.metadata["shard"]))
    return run_stage("merge_shards", {"kind": "features", "parts": [p.path for p in ordered], "out": feats.path})
