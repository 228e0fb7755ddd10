"""KFP component for the prepare stage."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from components.images import image_for


@dsl.component(base_image=image_for("prepare"), install_kfp_package=False)
def prepare(params: dict, prepared: Output[Dataset]) -> str:
    """Read the dataset, draw the split and decode the images (tagcode.stages.prepare)."""
    from tagcode.stages import run_stage

    return run_stage("prepare", {**params, "out": prepared.path})
