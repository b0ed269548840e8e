"""A small generic registry with did-you-mean lookup and entry-point plugins."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from audit.errors import AuditError, ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name → object registry.

    Args:
        kind: what is registered ("moderator", "metric"...), used in messages.
        error: exception class raised on unknown names.
        entry_point_group: optional ``importlib.metadata`` group scanned once for
            third-party plugins (each entry point loads to a callable that registers).
    """

    def __init__(
        self,
        kind: str,
        *,
        error: type[AuditError] = ConfigError,
        entry_point_group: str | None = None,
    ) -> None:
        self.kind = kind
        self._error = error
        self._items: dict[str, T] = {}
        self._group = entry_point_group
        self._plugins_loaded = entry_point_group is None

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name`` (again with the same object is a no-op)."""
        if name in self._items and self._items[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        return obj

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; without ``obj``, a decorator that does."""
        if obj is None:
            return lambda o: self.add(name, o)
        return self.add(name, obj)

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self._group or ""):
            ep.load()

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._items

    def __iter__(self) -> Iterator[tuple[str, T]]:
        self._load_plugins()
        return iter(sorted(self._items.items()))

    def get(self, name: str, *, where: str | None = None, field: str | None = None) -> T:
        """Look ``name`` up or raise with the closest known names."""
        self._load_plugins()
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._items), n=3, cutoff=0.5)
            hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else None
            known = ", ".join(sorted(self._items))
            raise self._error(
                f"unknown {self.kind} {name!r}",
                where=where,
                field=field,
                expected=f"one of: {known}",
                actual=repr(name),
                fix=hint or f"use one of the registered {self.kind}s (`audit list`)",
            ) from None
