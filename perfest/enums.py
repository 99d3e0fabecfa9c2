"""The base of perfest's named values (bounds, op groups, roles, …)."""

from __future__ import annotations

from enum import Enum


class StrEnum(str, Enum):
    """An enum whose members are their string values: they print, hash and compare as the
    value, so JSON, CSV and dictionaries keyed by the value all see the plain string."""

    __hash__ = str.__hash__

    def __str__(self) -> str:
        return self.value
