"""Compile the DAG to a KFP v2 YAML package:
``python -m pipeline.compile [--params params.yaml] [--out tagcode_pipeline.yaml] [--retries 2]
[--parallelism 8] [--no-cache] [--image-cache-pvc NAME]``. The params file's grid shapes the DAG."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kfp import compiler

from pipeline.dag import build
from pipeline.settings import ClusterOptions
from tagcode.errors import TagcodeError
from tagcode.stages import load_params


def compile_pipeline(path: str, params: dict[str, Any], options: ClusterOptions | None = None) -> str:
    """Write the pipeline compiled for ``params``'s grid to ``path`` and return it."""
    compiler.Compiler().compile(build(params, options), package_path=path)
    return path


def add_options(parser: argparse.ArgumentParser) -> None:
    """The compile-time Kubernetes options (shared with submit)."""
    d = ClusterOptions()
    parser.add_argument("--retries", type=int, default=d.retries, help="retries of a failed task (backoff doubles)")
    parser.add_argument("--parallelism", type=int, default=d.parallelism, help="max concurrent method × bits cells")
    parser.add_argument("--no-cache", action="store_true", help="turn Kubeflow's task caching off")
    parser.add_argument("--image-cache-pvc", default=None, help="PVC mounted at /mnt/tagcode-cache for the "
                                                                  "image-reading tasks (prepare, features)")


def options_from(args: argparse.Namespace) -> ClusterOptions:
    """ClusterOptions from parsed arguments."""
    return ClusterOptions(retries=args.retries, parallelism=args.parallelism, caching=not args.no_cache,
                          image_cache_pvc=args.image_cache_pvc)


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="tagcode_pipeline.yaml", help="output YAML path")
    parser.add_argument("--params", default="params.yaml", help="params file (validated; its grid shapes the DAG)")
    add_options(parser)
    args = parser.parse_args()
    try:
        print(compile_pipeline(args.out, load_params(args.params), options_from(args)))
    except TagcodeError as exc:
        print(f"compile: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
