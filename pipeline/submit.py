"""Submit a run to a Kubeflow Pipelines cluster:
``python -m pipeline.submit --host https://kfp.example.org --params params.yaml [--set name=value ...]``
(``--set`` takes any pipeline parameter of :mod:`pipeline.settings`, e.g. ``gpu_count=0``)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from pipeline.compile import add_options, compile_pipeline, options_from
from pipeline.dag import arguments
from pipeline.settings import ClusterOptions
from tagcode.errors import TagcodeError
from tagcode.stages import load_params


def submit(host: str, params_path: str, *, options: ClusterOptions | None = None, experiment: str = "tagcode",
           run_name: str | None = None, settings: dict[str, Any] | None = None) -> str:
    """Validate the params file, compile, upload and start one run; return its run id. An invalid params
    file or an unreachable host is a one-line error."""
    import kfp

    params = load_params(params_path)
    args = arguments(params, **(settings or {}))
    warnings.filterwarnings("ignore", category=FutureWarning, module="kfp")  # "only works with KFP >= 2.0.0b2"
    caching = (options or ClusterOptions()).caching
    with tempfile.TemporaryDirectory() as tmp:
        package = compile_pipeline(str(Path(tmp) / "tagcode.yaml"), params, options)
        try:
            client = kfp.Client(host=host)
            run = client.create_run_from_pipeline_package(package, arguments=args, experiment_name=experiment,
                                                          run_name=run_name, enable_caching=caching)
        except Exception as exc:  # kfp/urllib3 raise many types for a dead endpoint
            raise TagcodeError(f"{host}: cannot submit to Kubeflow Pipelines ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:200]})") from None
    return run.run_id


def _setting(text: str) -> tuple[str, Any]:
    """``name=value`` with a JSON value (strings may be bare)."""
    name, sep, raw = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected name=value, got {text!r}")
    try:
        return name, json.loads(raw)
    except json.JSONDecodeError:
        return name, raw


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", required=True, help="KFP API endpoint")
    parser.add_argument("--params", default="params.yaml", help="params file")
    parser.add_argument("--experiment", default="tagcode", help="KFP experiment name")
    parser.add_argument("--run-name", default=None, help="run name")
    parser.add_argument("--set", dest="settings", type=_setting, action="append", default=[],
                        metavar="NAME=VALUE", help="a pipeline parameter (pipeline/settings.py), repeatable")
    add_options(parser)
    args = parser.parse_args()
    try:
        print(submit(args.host, args.params, options=options_from(args), experiment=args.experiment,
                     run_name=args.run_name, settings=dict(args.settings)))
    except (TagcodeError, ValueError) as exc:
        print(f"submit: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
