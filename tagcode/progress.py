"""Progress bars and warnings for long steps: on by default when stderr is a terminal, quiet in CI and logs.

Stages that can run for more than a few seconds draw their bar through :func:`progress` (prepare's decoding,
features) or :func:`step_progress` (training: a hook on the methods' per-step loss log), with their
``progress`` option: ``None`` (the default) decides from the terminal and the ``CI`` variable,
``true``/``false`` force it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
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


class CountingRows:
    """A sliceable view (``len``, ``rows[a:b]``) of ``rows`` that advances ``bar`` by the rows each slice reads,
    so a method encoding a stream of images in batches shows progress without knowing about it."""

    def __init__(self, rows: Any, bar: Any) -> None:
        self.rows, self.bar = rows, bar

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, sl: slice) -> Any:
        out = self.rows[sl]
        self.bar.update(len(out))
        return out


def warn(message: str) -> None:
    """One warning line on stderr (the user's input works, but probably not as meant)."""
    print(f"tagcode: warning: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def step_progress(desc: str, *, enabled: bool | None = None) -> Iterator[Callable[[int, dict[str, float]], None]]:
    """A training hook: yields a ``log(step, terms)`` callback (the methods' loss-logging signature) that moves
    a step counter and shows the latest loss terms; a method that logs no steps shows nothing."""
    bar = None

    def log(step: int, terms: dict[str, float]) -> None:
        nonlocal bar
        if bar is None:
            bar = progress(0, desc, enabled=enabled, unit="step")
            bar.total = None
        bar.update(int(step) - bar.n)
        bar.set_postfix({k: f"{v:.4g}" for k, v in list(terms.items())[:4]}, refresh=False)

    try:
        yield log
    finally:
        if bar is not None:
            bar.close()
