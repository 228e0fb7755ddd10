"""KFP component for the train stage (one method × code length)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components.images import image_for


@dsl.component(base_image=image_for("train"), install_kfp_package=False)
def train(params: dict, cell: dict, prepared: Input[Dataset], feats: Input[Dataset], embed: Input[Dataset],
          model: Output[Model]) -> str:
    """Fit one method (or train variant) at one code length on the features and the embed_tags tags
    (tagcode.stages.train; baselines ignore the tags)."""
    from tagcode.stages import run_stage

    values = {**params, "method": cell["method"], "bits": int(cell["bits"])}
    return run_stage("train", {**values, "prepared": prepared.path, "features": feats.path, "embed": embed.path,
                               "out": model.path})
