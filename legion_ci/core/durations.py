"""Durations as people write them: 3600, '90s', '30m', '1h', '7d'."""

from __future__ import annotations

import re

from legion_ci.core.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)?\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: str | int, what: str = "duration") -> int:
    """Seconds from 3600, '90s', '30m', '1h' or '7d'; ConfigError naming `what` otherwise."""
    if isinstance(value, int):
        return value
    m = _DURATION.match(value)
    if not m or int(m[1]) <= 0:
        raise ConfigError(f"{what}: {value!r} is not a duration (expected e.g. 3600, 90s, 30m, 1h, 7d)")
    return int(m[1]) * _UNIT[m[2]]
