"""Run the whole DAG on this machine with ``kfp.local`` (lightweight components in subprocesses, in this
environment, installing nothing): ``python -m pipeline.run_local --params params.yaml --root .kfp-local``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipeline.dag import arguments, build
from tagcode.errors import TagcodeError
from tagcode.stages import load_params


def run_local(params: dict, root: str | Path, num_shards: int | None = None) -> Path:
    """Run the pipeline under ``root`` (pipeline root and kfp workspace both inside it); return the run's
    output directory (``<root>/outputs/tagcode-<timestamp>``)."""
    from kfp import local

    root = Path(root).resolve()
    (root / "workspace").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TMPDIR", str(root / "workspace"))
    before = set((root / "outputs").glob("tagcode-*"))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root / "outputs"),
               workspace_root=str(root / "workspace"), raise_on_error=True)
    build(params)(**arguments(params, num_shards=num_shards))
    (run,) = set((root / "outputs").glob("tagcode-*")) - before
    return run


def main() -> None:
    """Command-line entry point: validate the params file, then run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file")
    parser.add_argument("--root", default=".kfp-local", help="directory for pipeline outputs")
    parser.add_argument("--shards", type=int, default=None, help="features/encode shards (default 3)")
    args = parser.parse_args()
    try:
        print(run_local(load_params(args.params), args.root, num_shards=args.shards))
    except TagcodeError as exc:
        print(f"run_local: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
