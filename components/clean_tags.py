"""KFP component for the clean_tags stage."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components.images import image_for


@dsl.component(base_image=image_for("clean_tags"), install_kfp_package=False)
def clean_tags(params: dict, prepared: Input[Dataset], tags: Output[Dataset]) -> str:
    """Normalise and filter the tags (tagcode.stages.clean_tags)."""
    from tagcode.stages import run_stage

    return run_stage("clean_tags", {**params, "prepared": prepared.path, "out": tags.path})
