"""The ``tagcode`` command line: one subcommand per pipeline stage, generated from each stage's Config.

Every option of a stage is a field of its pydantic ``Config`` (with the field's description as help), so
the CLI, params.yaml, dvc.yaml and the Kubeflow components cannot drift apart. Values come from the
field defaults, then ``--params params.yaml`` (the stage's section), then the command-line options.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

import typer
from pydantic.fields import FieldInfo

from tagcode.config import StageConfig, build_config, check_params_file
from tagcode.errors import TagcodeError
from tagcode.stages import STAGES

app = typer.Typer(
    name="tagcode",
    help="Weakly supervised image retrieval from noisy tags: one subcommand per pipeline stage.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def stage_module(name: str) -> types.ModuleType:
    """Import ``tagcode.stages.<name>`` (each defines ``Config`` and ``run(cfg)``)."""
    return importlib.import_module(f"tagcode.stages.{name}")


def _is_scalar(annotation: Any) -> bool:
    """True for str/int/float/bool (optionally Optional); those are passed through unparsed."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    return all(a in (str, int, float, bool) for a in args)


def _parse_value(raw: str, annotation: Any) -> Any:
    """Parse a CLI string: JSON for lists/dicts (or comma-separated lists), the raw string otherwise."""
    if _is_scalar(annotation):
        return None if raw.lower() in {"none", "null"} and type(None) in typing.get_args(annotation) else raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        origin = typing.get_origin(annotation)
        if origin in (list, tuple) or any(typing.get_origin(a) in (list, tuple) for a in typing.get_args(annotation)):
            return [x.strip() for x in raw.split(",") if x.strip()]
        return raw


def _type_name(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "")
    return getattr(annotation, "__name__", text) if not typing.get_args(annotation) else text


def _option(name: str, field: FieldInfo) -> inspect.Parameter:
    default = field.default if field.default_factory is None else field.default_factory()
    help_text = f"{field.description or ''} [default: {json.dumps(default, default=str)}]".strip()
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(None, "--" + name.replace("_", "-"), help=help_text,
                             metavar=_type_name(field.annotation).upper(), show_default=False),
        annotation=str | None,
    )


def make_command(name: str) -> Any:
    """Build the typer command for stage ``name`` from its Config fields."""
    module = stage_module(name)
    config_cls: type[StageConfig] = module.Config

    def command(**kwargs: Any) -> None:
        params = kwargs.pop("params")
        overrides = {
            key: _parse_value(value, config_cls.model_fields[key].annotation)
            for key, value in kwargs.items()
            if value is not None
        }
        cfg = build_config(config_cls, name, params, overrides)
        summary = module.run(cfg)
        typer.echo(module.format_summary(summary) if hasattr(module, "format_summary") else json.dumps(summary))

    params = [
        inspect.Parameter(
            "params",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(None, "--params", help=f"params.yaml to read the '{name}' section from.",
                                 metavar="FILE"),
            annotation=Path | None,
        )
    ]
    params += [_option(key, field) for key, field in config_cls.model_fields.items()]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = (module.__doc__ or "").strip().split("\n\n")[0]
    return command


for _stage in STAGES:
    app.command(_stage.replace("_", "-"))(make_command(_stage))


@app.command("check-params")
def check_params(path: Path = typer.Argument(Path("params.yaml"), help="params file to validate")) -> None:
    """Validate every section of a params file (unknown keys and wrong types are errors)."""
    check_params_file(path, {s: stage_module(s).Config for s in STAGES})
    typer.echo(f"{path}: ok")


@app.command("show")
def show(
    root: Path = typer.Option(Path("."), help="project directory holding data/ and reports/"),
) -> None:
    """Print the summaries of the stages that have run (reads their report.json files)."""
    for name, rel in (("prepare", "data/prepared"), ("clean_tags", "data/tags"), ("embed_tags", "data/embed")):
        path = root / rel / "report.json"
        if path.is_file():
            typer.echo(stage_module(name).format_summary(json.loads(path.read_text(encoding="utf-8"))))
    table = root / "reports" / "table.md"
    if table.is_file():
        typer.echo(table.read_text(encoding="utf-8"))


@app.command("champions")
def champions() -> None:
    """List every registered model's champion with its primary metric (MLFLOW_TRACKING_URI, else the project's)."""
    from tagcode.tracking.backend import connect, mlflow_errors, probe, tracking_uri
    from tagcode.tracking.registry import champions as list_champions

    uri = tracking_uri()
    probe(uri)
    with mlflow_errors(uri):
        rows = list_champions(connect(uri)[0])
    if not rows:
        typer.echo(f"no champions in {uri}")
    for r in rows:
        value = "n/a" if r["value"] is None else f"{r['value']:.4f}"
        typer.echo(f"{r['name']}  v{r['version']}  {r['metric']} {value}  run {r['run_id']}")


def main() -> None:
    """Entry point: run the app, turning TagcodeError into one line on stderr and exit code 2."""
    try:
        app(standalone_mode=False)
    except TagcodeError as exc:
        typer.echo(f"tagcode: error: {exc}", err=True)
        sys.exit(2)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        sys.exit(code)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(130)
        raise
