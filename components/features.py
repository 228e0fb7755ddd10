"""KFP component for the features stage."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components.images import image_for


@dsl.component(base_image=image_for("features"))
def features(params: dict, prepared: Input[Dataset], feats: Output[Dataset]) -> str:
    """Backbone features for every cached image (tagcode.stages.features)."""
    from tagcode.stages import run_stage

    return run_stage("features", {**params, "prepared": prepared.path, "out": feats.path})
