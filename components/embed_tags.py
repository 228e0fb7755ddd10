"""KFP component for the embed_tags stage."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components.images import image_for


@dsl.component(base_image=image_for("embed_tags"), install_kfp_package=False)
def embed_tags(params: dict, tags: Input[Dataset], embed: Output[Dataset]) -> str:
    """Word vectors, graph enhancement and synonym merging (tagcode.stages.embed_tags)."""
    from tagcode.stages import run_stage

    return run_stage("embed_tags", {**params, "tags": tags.path, "out": embed.path})
