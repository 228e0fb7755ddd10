"""Reading users' text files: UTF-8 first, Latin-1 as a noted fallback (with the line), never a traceback."""

from __future__ import annotations

from tagcode.errors import TagcodeError
from tagcode.io import read_bytes


def read_text(uri: str, notes: list[tuple[str, str]] | None = None, *, required: bool = True) -> str:
    """Decode a text file; a non-UTF-8 file is read as Latin-1 and noted in ``notes`` (the file is used, so
    it is a note, not a skip), naming the first line that is not UTF-8. Without ``notes`` it is an error."""
    data = read_bytes(uri)
    if required and not data.strip():
        raise TagcodeError(f"{uri}: file is empty")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        if notes is None:
            raise TagcodeError(f"{uri}:{line}: not UTF-8") from None
        notes.append((uri, f"not UTF-8 (line {line}); decoded as Latin-1"))
        return data.decode("latin-1")


def read_lines(uri: str, notes: list[tuple[str, str]] | None = None, *, required: bool = True) -> list[str]:
    """The stripped, non-blank lines of a text file read with :func:`read_text`."""
    return [ln.strip() for ln in read_text(uri, notes, required=required).splitlines() if ln.strip()]
