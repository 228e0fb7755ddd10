"""Compile the DAG to a KFP v2 YAML package: ``python -m pipeline.compile [--gpu] [--out tagcode.yaml]``."""

from __future__ import annotations

import argparse

from kfp import compiler

from pipeline.dag import build


def compile_pipeline(path: str, gpu: bool = False) -> str:
    """Write the compiled pipeline to ``path`` and return it."""
    compiler.Compiler().compile(build(gpu=gpu), package_path=path)
    return path


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="tagcode_pipeline.yaml", help="output YAML path")
    parser.add_argument("--gpu", action="store_true", help="request an NVIDIA GPU for training tasks")
    args = parser.parse_args()
    print(compile_pipeline(args.out, gpu=args.gpu))


if __name__ == "__main__":
    main()
