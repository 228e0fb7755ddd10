"""Run the whole DAG on this machine with ``kfp.local`` (lightweight components in subprocesses):
``python -m pipeline.run_local --params params.yaml --root .kfp-local``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pipeline.dag import arguments, build
from tagcode.config import read_params


def run_local(params: dict, root: str | Path, cells: list[dict] | None = None) -> Path:
    """Run the pipeline under ``root`` (pipeline root and kfp workspace both inside it); return the root."""
    from kfp import local

    root = Path(root).resolve()
    (root / "workspace").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TMPDIR", str(root / "workspace"))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root / "outputs"),
               workspace_root=str(root / "workspace"), raise_on_error=True)
    build()(**arguments(params, cells))
    return root


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file")
    parser.add_argument("--root", default=".kfp-local", help="directory for pipeline outputs")
    args = parser.parse_args()
    print(run_local(read_params(args.params), args.root))


if __name__ == "__main__":
    main()
