"""KFP component for the encode stage."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components.images import image_for


@dsl.component(base_image=image_for("encode"))
def encode(params: dict, model: Input[Model], prepared: Input[Dataset], feats: Input[Dataset],
           codes: Output[Dataset]) -> str:
    """Database codes, query embeddings and a faiss index (tagcode.stages.encode)."""
    from tagcode.stages import run_stage

    return run_stage("encode", {**params, "model": model.path, "prepared": prepared.path,
                                "features": feats.path, "out": codes.path})
