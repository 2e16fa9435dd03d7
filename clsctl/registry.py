"""A small name -> object registry with close-match suggestions.

Names are normalised so that ``-`` and ``_`` do not matter and neither does case: ``resnet-50``,
``ResNet_50`` and ``resnet50`` name the same model, which is also why registering two names that differ only
in those characters raises.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from clsctl.errors import UnknownNameError

T = TypeVar("T")


def normalize_name(name: str) -> str:
    """Return the lookup key of ``name``: lower case, without ``-`` and ``_``.

    A separator between two digits becomes ``.`` so that ``regnet_x_1_6gf`` (= ``regnet_x_1.6gf``) stays apart
    from ``regnet_x_16gf``.
    """
    key = re.sub(r"(?<=\d)[-_](?=\d)", ".", name.strip().lower())
    return key.replace("-", "").replace("_", "")


def natural_key(name: str) -> list[object]:
    """Sort key that orders ``resnet18 < resnet50 < resnet101``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name.lower())]


def suggest(name: str, candidates: list[str], limit: int = 3) -> list[str]:
    """Return up to ``limit`` of ``candidates`` that look like ``name``."""
    by_key = {normalize_name(c): c for c in candidates}
    matches = difflib.get_close_matches(normalize_name(name), list(by_key), n=limit, cutoff=0.6)
    return [by_key[m] for m in matches]


def unknown_name_message(kind: str, name: str, candidates: list[str]) -> str:
    """Build ``unknown model 'resnt50'; did you mean 'resnet50'?`` style messages."""
    close = suggest(name, candidates)
    message = f"unknown {kind} '{name}'"
    if close:
        message += "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    return message


class Registry(Generic[T]):
    """Maps names to objects (usually factory functions).

    Args:
        kind: What is registered, used in error messages ("model", "dataset").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._names: dict[str, str] = {}  # key -> name as registered

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator registering an object under ``name`` (default: its ``__name__``)."""

        def decorator(obj: T) -> T:
            self.add(name or getattr(obj, "__name__"), obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        """Register ``obj``; a name already taken (after normalisation) raises ``ValueError``."""
        key = normalize_name(name)
        if key in self._items:
            raise ValueError(f"{self.kind} '{name}' is already registered (as '{self._names[key]}')")
        self._items[key] = obj
        self._names[key] = name

    def get(self, name: str) -> T:
        """Return the object registered as ``name``; unknown names raise with suggestions."""
        key = normalize_name(name)
        if key not in self._items:
            raise UnknownNameError(unknown_name_message(self.kind, name, self.names()))
        return self._items[key]

    def canonical(self, name: str) -> str:
        """Return the name as it was registered (``ResNet-50`` -> ``resnet50``)."""
        self.get(name)
        return self._names[normalize_name(name)]

    def names(self, pattern: str | None = None) -> list[str]:
        """Registered names in natural order, optionally filtered by a shell wildcard (``resnet*``)."""
        names = sorted(self._names.values(), key=natural_key)
        if pattern:
            key = normalize_name(pattern)
            if not any(ch in key for ch in "*?["):
                key = f"*{key}*"
            names = [n for n in names if fnmatch.fnmatchcase(normalize_name(n), key)]
        return names

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and normalize_name(name) in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
