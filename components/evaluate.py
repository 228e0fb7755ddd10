"""KFP component for the evaluate stage."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from components.images import image_for


@dsl.component(base_image=image_for("evaluate"), install_kfp_package=False)
def evaluate(params: dict, codes: Input[Dataset], prepared: Input[Dataset], results: Output[Dataset],
             metrics: Output[Metrics]) -> float:
    """mAP under the named protocols, P@N and PR curves (tagcode.stages.evaluate); returns the first mAP."""
    import json

    from tagcode.stages import run_stage

    summary = json.loads(run_stage("evaluate", {**params, "codes": codes.path, "prepared": prepared.path,
                                                "out": results.path}))
    for key, value in summary["scalars"].items():
        metrics.log_metric(key, float(value))
    return float(next(iter(summary["scalars"].values())))
