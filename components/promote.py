"""KFP component for the promote stage (one method × code length, after its evaluate)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components.images import image_for


@dsl.component(base_image=image_for("promote"), install_kfp_package=False)
def promote(params: dict, model: Input[Model], results: Input[Dataset], prepared: Input[Dataset],
            feats: Input[Dataset], decision: Output[Dataset]) -> str:
    """Register the cell's model and move its champion alias past the metric gate (tagcode.stages.promote);
    a model trained with tracking off is logged first from its evaluate results."""
    from tagcode.stages import run_stage

    return run_stage("promote", {**params, "model": model.path, "metrics": results.path, "prepared": prepared.path,
                                 "features": feats.path, "out": decision.path})
