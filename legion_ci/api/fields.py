"""Checks of request fields that answer 422 naming the field, the value and what was expected."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from legion_ci.api.errors import invalid

ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
DIGITS = re.compile(r"[0-9]{1,18}")  # ASCII only: str.isdigit() accepts '²', which int() refuses


def unknown_keys(body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    extra = sorted(set(body) - set(allowed))
    if extra:
        raise invalid(f"unknown field(s) {', '.join(map(repr, extra))} (expected {', '.join(allowed)})", extra[0])


def text(body: Mapping[str, Any], key: str, limit: int = 200) -> str:
    """A required non-empty string."""
    value = body.get(key)
    if value is None:
        raise invalid(f"{key!r} is required", key)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise invalid(f"{key!r} must be a non-empty string of at most {limit} characters, not {value!r}", key)
    return value.strip()


def choice(body: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str | None:
    """An optional string from `allowed`."""
    value = body.get(key)
    if value is not None and value not in allowed:
        raise invalid(f"{key}: {value!r} is not one of {', '.join(allowed)}", key)
    return value


def percent(value: Any, key: str, low: int = 0) -> int:
    """A whole percentage from `low` to 100 (booleans and floats refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"{key}: {value!r} is not a whole number (expected a percentage, {low}-100)", key)
    if not low <= value <= 100:
        raise invalid(f"{key}: {value} is out of range (expected a percentage, {low}-100)", key)
    return value


def alias_name(value: str) -> str:
    if not ALIAS.fullmatch(value):
        raise invalid(
            f"alias {value!r} is not a name (expected lowercase letters, digits, '-' or '_', "
            "starting with a letter, at most 63 characters)",
            "alias",
        )
    return value


def is_id(value: str) -> bool:
    return DIGITS.fullmatch(value) is not None


def limit(query: Mapping[str, str], default: int = 20, most: int = 200) -> int:
    raw = query.get("limit")
    if raw is None:
        return default
    if not DIGITS.fullmatch(raw) or not 1 <= int(raw) <= most:
        raise invalid(f"limit: {raw!r} is not a number from 1 to {most}", "limit")
    return int(raw)
