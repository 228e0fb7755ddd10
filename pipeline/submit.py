"""Submit a run to a Kubeflow Pipelines cluster:
``python -m pipeline.submit --host https://kfp.example.org --params params.yaml [--gpu] [--experiment tagcode]``."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from pipeline.compile import compile_pipeline
from pipeline.dag import arguments
from tagcode.config import read_params
from tagcode.errors import TagcodeError


def submit(host: str, params_path: str, *, gpu: bool = False, experiment: str = "tagcode",
           run_name: str | None = None) -> str:
    """Compile, upload and start one run; return its run id. An unreachable host is a one-line error."""
    import kfp

    params = read_params(params_path)
    with tempfile.TemporaryDirectory() as tmp:
        package = compile_pipeline(str(Path(tmp) / "tagcode.yaml"), gpu=gpu)
        try:
            client = kfp.Client(host=host)
            run = client.create_run_from_pipeline_package(package, arguments=arguments(params),
                                                          experiment_name=experiment, run_name=run_name)
        except Exception as exc:  # kfp/urllib3 raise many types for a dead endpoint
            raise TagcodeError(f"{host}: cannot submit to Kubeflow Pipelines ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:200]})") from None
    return run.run_id


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", required=True, help="KFP API endpoint")
    parser.add_argument("--params", default="params.yaml", help="params file")
    parser.add_argument("--gpu", action="store_true", help="request an NVIDIA GPU for training tasks")
    parser.add_argument("--experiment", default="tagcode", help="KFP experiment name")
    parser.add_argument("--run-name", default=None, help="run name")
    args = parser.parse_args()
    try:
        print(submit(args.host, args.params, gpu=args.gpu, experiment=args.experiment, run_name=args.run_name))
    except TagcodeError as exc:
        print(f"submit: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
