"""Progress bars and warnings for long steps: on by default when stderr is a terminal, quiet in CI and logs.

Every stage that can run for more than a few seconds (prepare's decoding, features, encode, training loops)
draws its bar through :func:`progress`, with its ``progress`` option: ``None`` (the default) decides from
the terminal and the ``CI`` variable, ``true``/``false`` force it.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def progress_enabled(setting: bool | None = None) -> bool:
    """``setting`` when given; otherwise True when stderr is a terminal and ``CI`` is not set."""
    if setting is not None:
        return bool(setting)
    return sys.stderr.isatty() and not os.environ.get("CI")


def progress(total: int, desc: str, *, enabled: bool | None = None, unit: str = "img", initial: int = 0) -> Any:
    """A tqdm bar on stderr for ``total`` items (a disabled one when not :func:`progress_enabled`); use it as a
    context manager and call ``update(n)``."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not progress_enabled(enabled),
                file=sys.stderr, dynamic_ncols=True)


def warn(message: str) -> None:
    """One warning line on stderr (the user's input works, but probably not as meant)."""
    print(f"tagcode: warning: {message}", file=sys.stderr, flush=True)
