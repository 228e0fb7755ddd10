"""User-facing errors: one line that names the file and the problem, never a deep traceback."""

from __future__ import annotations


class TagcodeError(Exception):
    """An error caused by the user's input or environment; the CLI prints it as one line."""


class LabelAccessError(TagcodeError):
    """Raised when training-side code tries to read ground-truth labels (evaluation only)."""
