"""User-facing errors: one line that names the file and the problem, never a deep traceback."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class TagcodeError(Exception):
    """An error caused by the user's input or environment; the CLI prints it as one line."""


class LabelAccessError(TagcodeError):
    """Raised when training-side code tries to read ground-truth labels (evaluation only)."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (library errors can span many lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_unique_ids(ids: Iterable[object], where: str | Path) -> None:
    """Image ids must be unique: a one-line TagcodeError naming ``where``, the first repeat and the count."""
    seen: set[str] = set()
    repeats = []
    for i in map(str, ids):
        if i in seen:
            repeats.append(i)
        seen.add(i)
    if repeats:
        raise TagcodeError(f"{where}: duplicate image ids, e.g. {repeats[0]!r} ({len(repeats)} duplicates)")
