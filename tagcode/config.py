"""Stage configuration: one pydantic model per stage, filled from params.yaml and overridden by the CLI.

A params.yaml with an unknown key or a wrong type is refused with one line naming the file and key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tagcode.errors import TagcodeError

C = TypeVar("C", bound="StageConfig")


class StageConfig(BaseModel):
    """Base of every stage's config: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def read_params(path: str | Path) -> dict[str, Any]:
    """Read params.yaml as a mapping of stage name to section (one-line error when malformed)."""
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
    return data


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
) -> C:
    """Defaults < params.yaml[section] < overrides, validated into ``cls``."""
    values: dict[str, Any] = {}
    where = f"{section} options"
    if params_path is not None:
        data = read_params(params_path)
        raw = data.get(section, {}) or {}
        if not isinstance(raw, dict):
            raise TagcodeError(f"{params_path}: section {section!r} must be a mapping")
        values.update(raw)
        where = f"{params_path}: {section}"
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return cls.model_validate(values)
    except ValidationError as exc:
        raise TagcodeError(validation_message(exc, where)) from None


class GridFamily(BaseModel):
    """One family of the method × bits grid: every method at every code length (a DVC ``matrix``)."""

    model_config = ConfigDict(extra="forbid")

    method: list[str] = Field(min_length=1, description="registered method names")
    bits: list[int] = Field(min_length=1, description="code lengths")
    gpu: bool = Field(False, description="torch-trained: the Kubeflow DAG requests a GPU for these train cells")


GRID = "grid"  # the params.yaml section holding the grid, read by dvc.yaml (matrix) and pipeline/dag.py


def read_grid(params: dict[str, Any], where: str | Path = "params.yaml") -> dict[str, GridFamily]:
    """The ``grid`` section of a params mapping, validated: family name → methods × bits."""
    raw = params.get(GRID)
    if not isinstance(raw, dict) or not raw:
        raise TagcodeError(f"{where}: section {GRID!r} must map family names to {{method: [...], bits: [...]}}")
    grid = {}
    for family, value in raw.items():
        if not str(family).isidentifier():
            raise TagcodeError(f"{where}: {GRID}.{family}: a family name must be an identifier (it names DVC stages)")
        try:
            grid[str(family)] = GridFamily.model_validate(value)
        except ValidationError as exc:
            raise TagcodeError(validation_message(exc, f"{where}: {GRID}.{family}")) from None
    return grid


def grid_cells(grid: dict[str, GridFamily], gpu: bool) -> list[dict[str, Any]]:
    """The (method, bits) cells of the families with ``gpu`` as given, keys sorted as kfp round-trips them."""
    return [{"bits": b, "method": m} for fam in grid.values() if fam.gpu == gpu for m in fam.method for b in fam.bits]


def check_params_file(path: str | Path, sections: dict[str, type[StageConfig]]) -> None:
    """Validate every section of a params file (and the grid); unknown top-level sections are errors too."""
    data = read_params(path)
    known = {*sections, GRID}
    for name in data:
        if name not in known:
            raise TagcodeError(f"{path}: unknown section {name!r}; known: {', '.join(sorted(known))}")
    for name, cls in sections.items():
        if name in data:
            build_config(cls, name, path)
    if GRID in data:
        read_grid(data, path)
