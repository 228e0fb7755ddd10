"""KFP components for the encode stage: one database shard, and the merge of the shards into one code set."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components.images import image_for


@dsl.component(base_image=image_for("encode"), install_kfp_package=False)
def encode(params: dict, shard: int, num_shards: int, model: Input[Model], prepared: Input[Dataset],
           feats: Input[Dataset], codes: Output[Dataset]) -> str:
    """Codes for one database shard and the query embeddings (tagcode.stages.encode)."""
    from tagcode.stages import run_stage

    codes.metadata["shard"] = shard
    return run_stage("encode", {**params, "shard": shard, "num_shards": num_shards, "model": model.path,
                                "prepared": prepared.path, "features": feats.path, "out": codes.path})


@dsl.component(base_image=image_for("merge_shards"), install_kfp_package=False)
def merge_codes(parts: Input[list[Dataset]], codes: Output[Dataset]) -> str:
    """Join the database shards in order and build the serving index (tagcode.stages.merge_shards)."""
    from tagcode.stages import run_stage

    ordered = sorted(parts, key=lambda p: int(p.metadata["shard"]))
    return run_stage("merge_shards", {"kind": "codes", "parts": [p.path for p in ordered], "out": codes.path})
