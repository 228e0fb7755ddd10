"""KFP component for the train stage (one method × code length)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components.images import image_for


@dsl.component(base_image=image_for("train"), install_kfp_package=False)
def train(params: dict, cell: dict, prepared: Input[Dataset], feats: Input[Dataset], model: Output[Model]) -> str:
    """Fit one method at one code length (tagcode.stages.train)."""
    from tagcode.stages import run_stage

    values = {**params, "method": cell["method"], "bits": int(cell["bits"])}
    return run_stage("train", {**values, "prepared": prepared.path, "features": feats.path, "out": model.path})
