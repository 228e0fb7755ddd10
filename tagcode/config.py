"""Stage configuration: one pydantic model per stage, filled from params.yaml and overridden by the CLI.

Precedence: field defaults < the dataset preset (params.yaml's top-level ``dataset:`` key or ``--dataset``,
``tagcode.data.presets``) < the params.yaml section < command-line options. A params.yaml with an unknown
key or a wrong type is refused with one line naming the file and key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Self, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tagcode.data.presets import apply_preset, preset
from tagcode.errors import TagcodeError

DATASET_KEY = "dataset"  # params.yaml's top-level preset key

C = TypeVar("C", bound="StageConfig")


class StageConfig(BaseModel):
    """Base of every stage's config: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    def default_out(self, path: str) -> Self:
        """Set an unset ``out`` to ``path``, derived from the cell (so `train --method wsdhq --bits 16` writes
        models/wsdhq-16, not a fixed default another cell also writes); called by the configs' validators."""
        if getattr(self, "out", "") is None:
            self.__dict__["out"] = path  # direct: validate_assignment would re-run this validator
        return self


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
        if name not in known and name != DATASET_KEY:
            raise TagcodeError(f"{path}: unknown section {name!r}; known: {', '.join(sorted(known))} "
                               f"(and the {DATASET_KEY!r} preset key)")
    for name, cls in sections.items():
        if name in data:
            build_config(cls, name, path)
    if GRID in data:
        read_grid(data, path)
