"""Jenkins cron syntax: validation and next run times, with Jenkins' own hash rule for `H`.

Mirrors `hudson.scheduler.CronTab`: five fields (minute hour day-of-month month day-of-week),
`*`, `H`, `H(a-b)`, ranges, steps, lists and the `@daily`-style aliases. `H` draws from a
`java.util.Random` seeded from the MD5 of the job's full name, as Jenkins does, so the times
printed here are the times Jenkins will use.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
LOWER = (0, 0, 1, 1, 0)
UPPER = (59, 23, 31, 12, 7)
HASH_UPPER = (59, 23, 28, 12, 6)  # Jenkins keeps H in day-of-month within 1-28
ALIASES = {
    "@yearly": "H H H H *",
    "@annually": "H H H H *",
    "@monthly": "H H H * *",
    "@weekly": "H H * * H",
    "@daily": "H H * * *",
    "@midnight": "H H(0-2) * * *",
    "@hourly": "H * * * *",
}
_TERM = re.compile(
    r"^(?:(?P<star>\*)|(?P<hash>H)(?:\((?P<hlo>\d+)-(?P<hhi>\d+)\))?|(?P<lo>\d+)(?:-(?P<hi>\d+))?)"
    r"(?:/(?P<step>\d+))?$"
)


class CronSyntaxError(ValueError):
    """The expression is not valid Jenkins cron; the message says which field and why."""


class JavaRandom:
    """`java.util.Random`, enough of it for `nextInt(bound)`."""

    _MULT = 0x5DEECE66D
    _MASK = (1 << 48) - 1

    def __init__(self, seed: int) -> None:
        self._seed = (seed ^ self._MULT) & self._MASK

    def _next(self, bits: int) -> int:
        self._seed = (self._seed * self._MULT + 0xB) & self._MASK
        value = self._seed >> (48 - bits)
        return value - (1 << bits) if value >= 1 << (bits - 1) and bits == 32 else value

    def next_int(self, bound: int) -> int:
        if bound & -bound == bound:
            return (bound * self._next(31)) >> 31
        while True:
            bits = self._next(31)
            value = bits % bound
            if bits - value + (bound - 1) < (1 << 31):
                return value


def jenkins_hash(seed: str) -> JavaRandom:
    """`hudson.util.Hash.from(seed)`: MD5 folded to 64 bits seeds a Java Random."""
    digest = bytearray(hashlib.md5(seed.encode("utf-8")).digest())
    for i in range(8, len(digest)):
        digest[i % 8] ^= digest[i]
    value = 0
    for i in range(8):
        value = (value << 8) + digest[i]
    if value >= 1 << 63:
        value -= 1 << 64
    return JavaRandom(value)


@dataclass(frozen=True)
class CronTab:
    """The sets of allowed values of each field after `H` has been resolved."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday; Jenkins needs day-of-month AND day-of-week to match

    def matches(self, t: datetime) -> bool:
        if t.minute not in self.minutes or t.hour not in self.hours or t.month not in self.months:
            return False
        dow = (t.weekday() + 1) % 7
        return t.day in self.days and dow in self.weekdays

    def next_times(self, after: datetime, count: int = 5) -> list[datetime]:
        """The next `count` minutes (strictly after `after`) at which the job runs."""
        found: list[datetime] = []
        t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = t + timedelta(days=366 * 5)
        while len(found) < count and t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
            elif t.day not in self.days or (t.weekday() + 1) % 7 not in self.weekdays:
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += timedelta(minutes=1)
            else:
                found.append(t)
                t += timedelta(minutes=1)
        return found


def _parse_field(text: str, index: int, rnd: JavaRandom) -> frozenset[int]:
    name, lo_bound, hi_bound = FIELDS[index], LOWER[index], UPPER[index]
    values: set[int] = set()
    for term in text.split(","):
        m = _TERM.match(term)
        if not m:
            raise CronSyntaxError(
                f"{name} field {term!r} is not valid (expected *, H, H(a-b), N, a-b, optionally /step, comma-separated)"
            )
        step = int(m["step"]) if m["step"] is not None else None
        if step is not None and step < 1:
            raise CronSyntaxError(f"{name} field {term!r}: step must be at least 1")
        if m["hash"]:
            lo = int(m["hlo"]) if m["hlo"] else lo_bound
            hi = int(m["hhi"]) if m["hhi"] else HASH_UPPER[index]
            _check_range(name, term, lo, hi, lo_bound, hi_bound)
            if step is not None and step > hi - lo + 1:
                raise CronSyntaxError(f"{name} field {term!r}: step {step} is larger than the range {lo}-{hi}")
            if step is not None and step > 1:
                values.update(range(lo + rnd.next_int(step), hi + 1, step))
            else:
                values.add(lo + rnd.next_int(hi - lo + 1))
            continue
        if m["star"]:
            lo, hi = lo_bound, hi_bound if index != 4 else 6
        else:
            lo = int(m["lo"])
            hi = int(m["hi"]) if m["hi"] is not None else (hi_bound if step else lo)
        _check_range(name, term, lo, hi, lo_bound, hi_bound)
        values.update(range(lo, hi + 1, step or 1))
    if index == 4 and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


def _check_range(name: str, term: str, lo: int, hi: int, lo_bound: int, hi_bound: int) -> None:
    for v in (lo, hi):
        if not lo_bound <= v <= hi_bound:
            raise CronSyntaxError(f"{name} field {term!r}: {v} is out of range {lo_bound}-{hi_bound}")
    if lo > hi:
        raise CronSyntaxError(f"{name} field {term!r}: range start {lo} is after its end {hi}")


def parse(expression: str, job_name: str = "") -> CronTab:
    """Parse one Jenkins cron line; `job_name` seeds `H` as Jenkins seeds it with the job's full name."""
    text = expression.strip()
    if not text:
        raise CronSyntaxError("empty cron expression (expected five fields, e.g. 'H 3 * * *', or an alias like '@daily')")
    if text.startswith("@"):
        if text not in ALIASES:
            raise CronSyntaxError(f"unknown alias {text!r} (expected one of {', '.join(ALIASES)})")
        text = ALIASES[text]
    parts = text.split()
    if len(parts) != 5:
        raise CronSyntaxError(
            f"{expression!r} has {len(parts)} field(s); expected 5: minute hour day-of-month month day-of-week"
        )
    rnd = jenkins_hash(job_name)
    sets = [_parse_field(part, i, rnd) for i, part in enumerate(parts)]
    return CronTab(expression, *sets)
