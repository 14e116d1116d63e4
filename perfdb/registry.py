"""Enum-keyed registries (op cases, collectors, scheduler policies): a second entry for a key is a bug."""
from __future__ import annotations

from enum import Enum
from typing import TypeVar

V = TypeVar("V")


def add(registry: dict[Enum, V], key: Enum, value: V, what: str) -> V:
    """registry[key] = value, raising RuntimeError when `key` is already registered."""
    if key in registry:
        raise RuntimeError(f"{what} for {key.value} registered twice")
    registry[key] = value
    return value
