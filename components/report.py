"""KFP component for the report stage: the table, plots and retrieval grid over every evaluated cell."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components.images import image_for


@dsl.component(base_image=image_for("report"), install_kfp_package=False)
def report(params: dict, prepared: Input[Dataset], results: Input[list[Dataset]], gpu_results: Input[list[Dataset]],
           codes: Input[list[Dataset]], gpu_codes: Input[list[Dataset]], tables: Output[Dataset]) -> str:
    """Lay the evaluate and merged encode outputs out as ``<method>-<bits>/`` (as under dvc) and run
    tagcode.stages.report; the retrieval grid is drawn when the grid has a cell at its code length."""
    import json
    import shutil
    import tempfile
    from pathlib import Path

    from tagcode.stages import run_stage
    from tagcode.stages.report import GRID_BITS

    def lay_out(outputs: list, meta_file: str, into: Path) -> set[int]:
        """Copy each output once to ``into/<method>-<bits>``; the code lengths seen."""
        bits = set()
        for out in {o.uri: o for o in outputs}.values():
            meta = json.loads((Path(out.path) / meta_file).read_text(encoding="utf-8"))
            shutil.copytree(out.path, into / f"{meta['method']}-{meta['bits']}")
            bits.add(int(meta["bits"]))
        return bits

    with tempfile.TemporaryDirectory() as tmp:
        lay_out([*results, *gpu_results], "metrics.json", Path(tmp) / "metrics")
        grid = GRID_BITS in lay_out([*codes, *gpu_codes], "meta.json", Path(tmp) / "codes")
        return run_stage("report", {**params, "metrics": str(Path(tmp) / "metrics"), "prepared": prepared.path,
                                    "codes": str(Path(tmp) / "codes") if grid else None, "out": tables.path})
