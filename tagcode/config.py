"""Stage configuration: one pydantic model per stage, filled from params.yaml and overridden by the CLI.

Precedence: field defaults < the dataset preset (params.yaml's top-level ``dataset:`` key or ``--dataset``,
``tagcode.data.presets``) < the params.yaml section < command-line options. A params.yaml with an unknown
key or a wrong type is refused with one line naming the file and key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from tagcode.data.presets import apply_preset, preset
from tagcode.errors import TagcodeError

DATASET_KEY = "dataset"  # params.yaml's top-level preset key

C = TypeVar("C", bound="StageConfig")


class StageConfig(BaseModel):
    """Base of every stage's config: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def read_params(path: str | Path, *, raw: bool = False) -> dict[str, Any]:
    """Read params.yaml as a mapping of stage name to section (one-line error when malformed), each section
    on top of the ``dataset:`` preset's settings for it (unless ``raw``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TagcodeError(f"{p}: params file not found") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise TagcodeError(f"{p}:{where} not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise TagcodeError(f"{p}: expected a mapping of stage sections, got {type(data).__name__}")
    if raw or data.get(DATASET_KEY) is None:
        return data
    try:
        sections = preset(data[DATASET_KEY])
    except TagcodeError as exc:
        raise TagcodeError(f"{p}: {DATASET_KEY}: {exc}") from None
    return {**data, **{s: apply_preset(data[DATASET_KEY], s, data.get(s) or {}) for s in sections}}


def validation_message(exc: ValidationError, where: str) -> str:
    """Compress a pydantic ValidationError into one line: ``where: key: problem (got value)``."""
    err = exc.errors()[0]
    key = ".".join(str(x) for x in err["loc"]) or "<section>"
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown key {key!r}"
    got = err.get("input")
    shown = json.dumps(got, default=str) if not isinstance(got, dict) else "{...}"
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{where}: {key}: {err['msg']} (got {shown}){more}"


def build_config(
    cls: type[C],
    section: str,
    params_path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    dataset: str | None = None,
) -> C:
    """Defaults < dataset preset < params.yaml[section] < overrides, validated into ``cls``.

    ``dataset`` (``--dataset``) replaces the params file's ``dataset:`` preset. An override of None sets the
    key to None (``--eps none``). A bad value is a one-line error that names where it came from: the params
    file and section, or the command-line option.
    """
    values: dict[str, Any] = {}
    where = f"{section} options"
    if params_path is not None:
        data = read_params(params_path, raw=True)
        raw = data.get(section, {}) or {}
        if not isinstance(raw, dict):
            raise TagcodeError(f"{params_path}: section {section!r} must be a mapping")
        chosen = dataset if dataset is not None else data.get(DATASET_KEY)
        try:
            values.update(apply_preset(chosen, section, raw))
        except TagcodeError as exc:
            raise TagcodeError(f"{params_path}: {DATASET_KEY}: {exc}") from None
        where = f"{params_path}: {section}"
    elif dataset is not None:
        values.update(apply_preset(dataset, section, {}))
    overrides = dict(overrides or {})
    values.update(overrides)
    try:
        return cls.model_validate(values)
    except ValidationError as exc:
        key = exc.errors()[0]["loc"][0] if exc.errors()[0]["loc"] else None
        if key in overrides:
            where = f"{section}: command-line option --{str(key).replace('_', '-')}"
        raise TagcodeError(validation_message(exc, where)) from None


def check_params_file(path: str | Path, sections: dict[str, type[StageConfig]]) -> None:
    """Validate every section of a params file; unknown top-level sections are errors too."""
    data = read_params(path)
    for name in data:
        if name not in sections and name != DATASET_KEY:
            raise TagcodeError(f"{path}: unknown section {name!r}; known: {', '.join(sorted(sections))} "
                               f"(and the {DATASET_KEY!r} preset key)")
    for name, cls in sections.items():
        if name in data:
            build_config(cls, name, path)
