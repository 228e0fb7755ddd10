"""Reading users' text files: UTF-8 first, Latin-1 as a reported fallback, never a traceback."""

from __future__ import annotations

from tagcode.errors import TagcodeError
from tagcode.io import read_bytes


def read_text(uri: str, problems: list[tuple[str, str]] | None = None, *, required: bool = True) -> str:
    """Decode a text file; a non-UTF-8 file is read as Latin-1 and noted in ``problems``."""
    data = read_bytes(uri)
    if required and not data.strip():
        raise TagcodeError(f"{uri}: file is empty")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if problems is None:
            raise TagcodeError(f"{uri}: not UTF-8 (byte {exc.start})") from None
        problems.append((uri, "not UTF-8; decoded as Latin-1"))
        return data.decode("latin-1")


def read_lines(uri: str, problems: list[tuple[str, str]] | None = None, *, required: bool = True) -> list[str]:
    """The stripped, non-blank lines of a text file read with :func:`read_text`."""
    return [ln.strip() for ln in read_text(uri, problems, required=required).splitlines() if ln.strip()]
