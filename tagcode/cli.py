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
from rich.markup import escape

from tagcode.config import StageConfig, build_config, check_params_file
from tagcode.data.presets import PRESETS
from tagcode.data.presets import SECTIONS as PRESET_SECTIONS
from tagcode.errors import TagcodeError
from tagcode.stages import STAGES, execute

app = typer.Typer(
    name="tagcode",
    help="Weakly supervised image retrieval from noisy tags: one subcommand per pipeline stage.",
    no_args_is_help=False,  # bare `tagcode` is a one-line usage error, not a help page plus an error
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
)


def stage_module(name: str) -> types.ModuleType:
    """Import ``tagcode.stages.<name>`` (each defines ``Config`` and ``run(cfg)``)."""
    return importlib.import_module(f"tagcode.stages.{name}")


def _members(annotation: Any) -> list[Any]:
    """The non-None members of a (possibly Optional / union) annotation."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def _is_scalar(annotation: Any) -> bool:
    """True for str/int/float/bool (optionally Optional); those are passed through unparsed."""
    return all(a in (str, int, float, bool) for a in _members(annotation))


def _is_list(annotation: Any) -> bool:
    """True for list/tuple annotations (optionally Optional)."""
    return any(typing.get_origin(a) in (list, tuple) or a in (list, tuple) for a in _members(annotation))


def _parse_value(raw: str, annotation: Any) -> Any:
    """Parse a CLI string: ``none``/``null`` is None where the field allows it; a list is JSON
    (``'[10, 100]'``) or comma-separated (``wsdhq,wshrca``); a dict is JSON; scalars pass through."""
    if type(None) in typing.get_args(annotation) and raw.strip().lower() in {"none", "null"}:
        return None
    literals = {v for a in _members(annotation) if typing.get_origin(a) is typing.Literal for v in typing.get_args(a)}
    if _is_scalar(annotation) or raw in literals:  # e.g. clean_tags' stop_list: a list, or the name 'mirflickr'
        return raw
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    if _is_list(annotation) and not isinstance(value, list):
        return [x.strip() for x in raw.split(",") if x.strip()]
    return value


def _type_name(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "")
    return getattr(annotation, "__name__", text) if not typing.get_args(annotation) else text


def _default_text(field: FieldInfo) -> str:
    """How ``--help`` shows a field's default: ``none``, a number or word, or JSON for lists and dicts."""
    default = field.default if field.default_factory is None else field.default_factory()
    if default is None:
        return "none"
    if isinstance(default, list | tuple | dict):
        return json.dumps(default)
    return str(default).lower() if isinstance(default, bool) else str(default)


def _help_text(field: FieldInfo) -> str:
    """A field's description, how to write a list or None on the command line, and the default (escaped, as
    rich markup would otherwise swallow ``[default: ...]``)."""
    text = field.description or ""
    if _is_list(field.annotation):
        text += " (comma-separated, or JSON such as '[10, 100]')"
    if type(None) in typing.get_args(field.annotation):
        text += " ('none' for None)"
    return escape(f"{text} [default: {_default_text(field)}]".strip())


def _option(name: str, field: FieldInfo) -> inspect.Parameter:
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(None, "--" + name.replace("_", "-"), help=_help_text(field),
                             metavar=_type_name(field.annotation).upper(), show_default=False),
        annotation=str | None,
    )


def make_command(name: str) -> Any:
    """Build the typer command for stage ``name`` from its Config fields."""
    module = stage_module(name)
    config_cls: type[StageConfig] = module.Config

    def command(**kwargs: Any) -> None:
        params = kwargs.pop("params")
        dataset = kwargs.pop("dataset", None)
        overrides = {  # an option not given is None here; one given as 'none' parses to None and is kept
            key: _parse_value(value, config_cls.model_fields[key].annotation)
            for key, value in kwargs.items()
            if value is not None
        }
        cfg = build_config(config_cls, name, params, overrides, dataset=dataset)
        summary = execute(module, cfg)
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
    if name in PRESET_SECTIONS:
        params.append(inspect.Parameter(
            "dataset", inspect.Parameter.KEYWORD_ONLY, annotation=str | None,
            default=typer.Option(None, "--dataset", metavar="PRESET", help=escape(
                f"dataset preset, under params.yaml's section: {', '.join(PRESETS)} [default: params.yaml's "
                "'dataset:' key, else none]"))))
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


@app.command("listing")
def listing(
    params: Path | None = typer.Option(None, "--params", metavar="FILE",
                                       help="params.yaml whose prepare section (and dataset preset) names the root"),
    dataset: str | None = typer.Option(None, "--dataset", metavar="PRESET", help="dataset preset"),
    root: str | None = typer.Option(None, "--root", help="dataset root (default: from --params / --dataset)"),
    out: Path = typer.Option(Path("data/dataset_listing.json"), help="listing file to write"),
) -> None:
    """Write what the dataset root holds (sizes + mtimes, or S3 ETags) as a digest: prepare's DVC dependency,
    so a changed dataset re-runs prepare. The file is rewritten only when the dataset changed."""
    from tagcode.data.listing import write_listing

    cfg = build_config(stage_module("prepare").Config, "prepare", params, {"root": root} if root else {},
                       dataset=dataset)
    result = write_listing(cfg.root, out)
    typer.echo(f"listing: {result['files']} files, {result['bytes']} bytes under {cfg.root} → {out}")


@app.command("show")
def show(
    root: Path = typer.Option(Path("."), help="project directory holding data/ and reports/"),
) -> None:
    """Print the summaries of the stages of the current run and the table, if it was measured on the current
    split; say what is missing or left over from another run."""
    for line in show_lines(root):
        typer.echo(line)


def show_lines(root: Path) -> list[str]:
    """What ``tagcode show`` prints. The current run is the prepare output in ``data/prepared``: a tag-stage
    summary written before it (older file) is stale, and the table is shown only when its fingerprint is that
    of the current split (``report.current_fingerprint``)."""
    lines: list[str] = []
    prepared = root / "data" / "prepared" / "report.json"
    if not prepared.is_file():
        return [f"prepare: missing ({prepared} not found; run `dvc repro` or `tagcode prepare`)"]
    since = prepared.stat().st_mtime_ns
    for name, rel in (("prepare", "data/prepared"), ("clean_tags", "data/tags"), ("embed_tags", "data/embed")):
        path = root / rel / "report.json"
        if not path.is_file():
            lines.append(f"{name}: missing ({path} not found; run `dvc repro {name}`)")
        elif path.stat().st_mtime_ns < since:
            lines.append(f"{name}: stale ({path} was written before the current prepare output; "
                         f"run `dvc repro {name}`)")
        else:
            lines.append(stage_module(name).format_summary(json.loads(path.read_text(encoding="utf-8"))))
    table, table_json = root / "reports" / "table.md", root / "reports" / "table.json"
    if not (table.is_file() and table_json.is_file()):
        lines.append(f"report: missing ({table} not found; run `dvc repro report`)")
        return lines
    current = stage_module("report").current_fingerprint(root / "data" / "prepared")
    recorded = json.loads(table_json.read_text(encoding="utf-8")).get("fingerprint")
    if recorded is None:
        lines.append(f"report: stale ({table} records no split fingerprint: it predates them; run `dvc repro`)")
    elif recorded != current:
        lines.append(f"report: stale ({table} was measured on another dataset or split; run `dvc repro report`)")
    else:
        lines.append(table.read_text(encoding="utf-8").rstrip("\n"))
        lines.extend(missing_cells(root, json.loads(table_json.read_text(encoding="utf-8"))["rows"]))
    return lines


def missing_cells(root: Path, rows: list[dict[str, Any]]) -> list[str]:
    """A line naming the cells of params.yaml's grid that the table lacks (none when all are in, or when the
    project has no params.yaml grid)."""
    from tagcode.config import GRID, read_grid, read_params

    params_path = root / "params.yaml"
    if not params_path.is_file() or GRID not in (params := read_params(params_path, raw=True)):
        return []
    have = {(r["method"], int(r["bits"])) for r in rows if r.get("bits") is not None}
    grid = [(m, b) for fam in read_grid(params, params_path).values() for m in fam.method for b in fam.bits]
    missing = [f"{m}-{b}" for m, b in grid if (m, b) not in have]
    if not missing:
        return []
    return [f"report: {len(missing)} of {len(grid)} cells of the grid are missing from the table: "
            f"{', '.join(missing)} (run `dvc repro`)"]


def _click_exceptions() -> list[types.ModuleType]:
    """The exception modules of click and of the copy of click that typer vendors (typer ≥ 0.16 raises its
    own ``typer._click`` classes, which are not click's)."""
    modules = []
    for name in ("click.exceptions", "typer._click.exceptions"):
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            continue
    return modules


def usage_error(exc: BaseException) -> tuple[str, int] | None:
    """``(one-line message, exit code)`` for a command-line usage mistake raised by click or typer, else None."""
    for mod in _click_exceptions():
        if isinstance(exc, mod.UsageError):
            ctx = exc.ctx
            path = ctx.command_path if ctx is not None else _command_path(sys.argv[1:])
            message = one_line_text(exc.format_message())
            if ctx is not None and hasattr(ctx.command, "list_commands"):  # a mistake at the command level
                message += f" Commands: {', '.join(ctx.command.list_commands(ctx))}."
            return f"{message} (see '{path} --help')", exc.exit_code
        if isinstance(exc, mod.ClickException):
            return one_line_text(exc.format_message()), exc.exit_code
        if isinstance(exc, getattr(mod, "Abort", ())):  # typer's vendored copy has no Abort
            return "aborted", 130
    return None


def _command_path(argv: list[str]) -> str:
    """``tagcode <subcommand>`` when the first argument names one (some click errors carry no context)."""
    names = {c.name for c in app.registered_commands}
    return f"tagcode {argv[0]}" if argv and argv[0] in names else "tagcode"


def one_line_text(text: str) -> str:
    """Collapse a message onto one line."""
    return " ".join(text.split())


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


def make_serve_command() -> Any:
    """``tagcode serve``: its options are the fields of the service's Settings (as a stage's are of its Config),
    each also read from ``TAGCODE_SERVE_<FIELD>`` (how a Kubernetes Deployment configures it)."""
    from tagcode.serve.settings import Settings

    def command(**kwargs: Any) -> None:
        from pydantic import ValidationError

        from tagcode.config import validation_message
        from tagcode.serve.server import serve as run_service

        values = {key: _parse_value(value, Settings.model_fields[key].annotation)
                  for key, value in kwargs.items() if value is not None}
        try:
            settings = Settings(**values)
        except ValidationError as exc:
            raise TagcodeError(validation_message(exc, "tagcode serve options")) from None
        run_service(settings)

    params = []
    for key, field in Settings.model_fields.items():
        option = _option(key, field)
        option.default.envvar = f"TAGCODE_SERVE_{key.upper()}"
        params.append(option)
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = ("Serve champions over HTTP: search by uploaded image, tag words or image id; the web page at "
                       "/, the OpenAPI schema at /openapi.json, Prometheus metrics at /metrics.")
    return command


app.command("serve")(make_serve_command())


def main() -> None:
    """Entry point: run the app; a TagcodeError or a command-line usage mistake becomes one line on stderr
    and exit code 2 (130 when interrupted), never a traceback."""
    try:
        code = app(prog_name="tagcode", standalone_mode=False)
    except TagcodeError as exc:
        typer.echo(f"tagcode: error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("tagcode: error: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        usage = usage_error(exc)
        if usage is None:
            raise
        typer.echo(f"tagcode: error: {usage[0]}", err=True)
        sys.exit(usage[1])
    sys.exit(code if isinstance(code, int) else 0)
