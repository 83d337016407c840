"""One name-to-object table for every pluggable thing: generators, dataset drafts, training methods, attack presets,
Lipschitz estimators.

Entries may be lazy ("package.module:attribute", imported on first `get`), so a registry can be listed without
importing torch. Unknown names are one IrobError: "unknown <kind> 'name' (available: a, b, c)".
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Iterator
from typing import Generic, TypeVar, cast

from irob_bench.errors import IrobError

T = TypeVar("T")
_MISSING = object()


class _Lazy:
    """A "module:attribute" reference resolved on first use."""

    __slots__ = ("target",)

    def __init__(self, target: str) -> None:
        if ":" not in target:
            raise ValueError(f"a lazy entry is 'module:attribute', got {target!r}")
        self.target = target

    def resolve(self) -> object:
        """Import the target module and return the named attribute."""
        module, _, attribute = self.target.partition(":")
        value: object = importlib.import_module(module)
        for part in attribute.split("."):
            value = getattr(value, part)
        return value


class Registry(Generic[T]):
    """Named entries of one kind, in registration order; `kind` names them in errors ("attack preset")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | _Lazy] = {}

    def add(self, name: str, entry: T) -> T:
        """Register an object under `name` (a second entry of the same name is a programming error)."""
        self._check_new(name)
        self._entries[name] = entry
        return entry

    def add_lazy(self, name: str, target: str) -> None:
        """Register "module:attribute", imported when the entry is first used."""
        self._check_new(name)
        self._entries[name] = _Lazy(target)

    def get(self, name: str, default: object = _MISSING) -> T:
        """The entry called `name`; an unknown name is an IrobError listing the available ones (or `default`, if
        given, as dict.get does)."""
        try:
            entry = self._entries[name]
        except (KeyError, TypeError):
            if default is not _MISSING:
                return default  # type: ignore[return-value]
            raise IrobError(self.unknown(name)) from None
        if isinstance(entry, _Lazy):
            entry = cast(T, entry.resolve())
            self._entries[name] = entry
        return entry

    def list(self, pattern: str | None = None) -> list[str]:
        """Registered names in registration order, optionally only those matching a glob ('saturated-*')."""
        names = list(self._entries)
        return names if pattern is None else [n for n in names if fnmatch.fnmatchcase(n, pattern)]

    def unknown(self, name: object) -> str:
        """The one-line message for a name that is not registered."""
        return f"unknown {self.kind} {str(name)!r} (available: {', '.join(self._entries) or 'none'})"

    def items(self) -> Iterator[tuple[str, T]]:
        """(name, entry) pairs, resolving lazy entries."""
        for name in list(self._entries):
            yield name, self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __setitem__(self, name: str, entry: T) -> None:
        """Replace (or add) an entry: for tests that swap one in (pytest's monkeypatch.setitem)."""
        self._entries[name] = entry

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"

    def _check_new(self, name: str) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
