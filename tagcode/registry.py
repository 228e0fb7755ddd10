"""A timm-style registry: register a factory under a name, create it by name, list what exists."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

from tagcode.errors import TagcodeError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories; unknown names give a one-line error with the closest suggestion."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = {}
        self._lazy: dict[str, str] = {}

    def register_lazy(self, name: str, module: str) -> None:
        """Declare that importing ``module`` registers ``name``; it is imported on first use of the name, so
        a process that never uses it never pays for its imports (torch for the torch-trained methods)."""
        self._lazy[name] = module

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator that registers ``fn`` under ``name``."""

        def deco(fn: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = fn
            return fn

        return deco

    def get(self, name: str) -> Callable[..., T]:
        """Return the factory for ``name`` or raise a TagcodeError listing the known names."""
        if name not in self._entries and name in self._lazy:
            importlib.import_module(self._lazy[name])
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, self.names(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(self.names())
            raise TagcodeError(f"unknown {self.kind} {name!r}{hint}; known: {known}") from None

    def create(self, name: str, /, **kwargs: object) -> T:
        """Build the registered object ``name`` with ``kwargs``."""
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        """All registered names (lazy ones included), sorted."""
        return sorted({*self._entries, *self._lazy})

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._lazy
