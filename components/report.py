"""KFP component for the report stage: the table and plots over every evaluated cell."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components.images import image_for


@dsl.component(base_image=image_for("report"), install_kfp_package=False)
def report(params: dict, results: Input[list[Dataset]], gpu_results: Input[list[Dataset]],
           tables: Output[Dataset]) -> str:
    """Lay the evaluate outputs out as ``<method>-<bits>/`` (as under dvc) and run tagcode.stages.report."""
    import json
    import shutil
    import tempfile
    from pathlib import Path

    from tagcode.stages import run_stage

    with tempfile.TemporaryDirectory() as tmp:
        for result in {r.uri: r for r in [*results, *gpu_results]}.values():  # each evaluate output once
            metrics = json.loads((Path(result.path) / "metrics.json").read_text(encoding="utf-8"))
            shutil.copytree(result.path, Path(tmp) / f"{metrics['method']}-{metrics['bits']}")
        return run_stage("report", {**params, "metrics": tmp, "out": tables.path})
