"""Jenkins cron syntax: validation and next run times, with Jenkins' own hash rule for `H`.

Mirrors `hudson.scheduler.CronTabList`, `CronTab` and `CrontabParser.g4`: one or more lines (blank lines
and `#` comments ignored, an optional first line `TZ=Area/City`), each of five fields (minute hour
day-of-month month day-of-week) separated by spaces or tabs, or an alias (`@daily`, ...). A field is a
comma-separated list of terms: `N`, `N-M`, `N-M/S`, `*`, `*/S`, `H`, `H/S`, `H(N-M)`, `H(N-M)/S`.
(`N/S` is not Jenkins syntax and is refused, as Jenkins refuses it.) Day-of-month and day-of-week must
BOTH match, unlike Vixie cron. `H` draws from one `java.util.Random` seeded from the MD5 of the job's
full name (`hudson.scheduler.Hash.from(job.getFullName())`), shared by every field and line in order,
so the times printed here are the times Jenkins uses. Without a job name `H` takes the lowest value,
as Jenkins does with no hash (`Hash.zero()`).

One deliberate difference: a line that can never fire (day 30 in February only) is refused here,
where Jenkins accepts it silently and never runs the job.
"""

from __future__ import annotations

import calendar
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
LOWER = (0, 0, 1, 1, 0)
UPPER = (59, 23, 31, 12, 7)
HASH_UPPER = (59, 23, 28, 12, 6)  # BaseParser.doHash: day-of-month 1-28 is always safe; 0 and 7 are both Sunday
ALIASES = {
    "@yearly": "H H H H *",
    "@annually": "H H H H *",
    "@monthly": "H H H * *",
    "@weekly": "H H * * H",
    "@daily": "H H * * *",
    "@midnight": "H H(0-2) * * *",
    "@hourly": "H * * * *",
}
SEARCH_YEARS = 30  # long enough for 29 February on a given weekday (every 28 years)
_TERM = re.compile(
    r"^(?:(?P<lo>\d+)-(?P<hi>\d+)(?:/(?P<rstep>\d+))?"
    r"|(?P<single>\d+)"
    r"|\*(?:/(?P<sstep>\d+))?"
    r"|H\((?P<hlo>\d+)-(?P<hhi>\d+)\)(?:/(?P<hrstep>\d+))?"
    r"|H(?:/(?P<hstep>\d+))?)$"
)
_FIELD_SEP = re.compile(r"[ \t]+")


class CronSyntaxError(ValueError):
    """The expression is not valid Jenkins cron; the message says which line, field and why."""


class Hash(Protocol):
    """`hudson.scheduler.Hash`: picks a stable pseudo-random value in [0, n)."""

    def next(self, n: int) -> int: ...


class ZeroHash:
    """`Hash.zero()`: what Jenkins uses when there is no job to seed from."""

    def next(self, n: int) -> int:
        return 0


class JavaRandom:
    """`java.util.Random`, enough of it for `nextInt(bound)`; also a `Hash`."""

    _MULT = 0x5DEECE66D
    _MASK = (1 << 48) - 1

    def __init__(self, seed: int) -> None:
        self._seed = (seed ^ self._MULT) & self._MASK

    def _next31(self) -> int:
        self._seed = (self._seed * self._MULT + 0xB) & self._MASK
        return self._seed >> 17

    def next_int(self, bound: int) -> int:
        if bound <= 0:
            raise ValueError(f"bound must be positive (got {bound})")
        if bound & -bound == bound:  # a power of two
            return (bound * self._next31()) >> 31
        while True:
            bits = self._next31()
            value = bits % bound
            if bits - value + (bound - 1) < (1 << 31):  # Java's int overflow test
                return value

    def next(self, n: int) -> int:
        return self.next_int(n)


def jenkins_hash(seed: str) -> JavaRandom:
    """`hudson.scheduler.Hash.from(seed)`: the MD5 of the UTF-8 seed folded to 64 bits seeds a Java Random."""
    digest = bytearray(hashlib.md5(seed.encode("utf-8")).digest())
    for i in range(8, len(digest)):
        digest[i % 8] ^= digest[i]
    value = int.from_bytes(digest[:8], "big", signed=True)
    return JavaRandom(value)


@dataclass(frozen=True)
class CronTab:
    """One line, after `H` has been resolved: the allowed values of each field."""

    line: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday; day-of-month AND day-of-week must match

    def matches(self, t: datetime) -> bool:
        return (
            t.minute in self.minutes
            and t.hour in self.hours
            and t.day in self.days
            and t.month in self.months
            and (t.weekday() + 1) % 7 in self.weekdays
        )

    def next_match(self, t: datetime, limit: datetime) -> datetime | None:
        """The first wall-clock minute at or after naive `t` (and before `limit`) this line matches."""
        t = t.replace(second=0, microsecond=0)
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
            elif t.day not in self.days or (t.weekday() + 1) % 7 not in self.weekdays:
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += timedelta(minutes=1)
            else:
                return t
        return None


@dataclass(frozen=True)
class CronTabList:
    """A whole trigger spec: its lines (OR-ed) and the time zone of an optional `TZ=` first line."""

    expression: str
    tabs: tuple[CronTab, ...]
    timezone: str | None = None

    def matches(self, t: datetime) -> bool:
        return any(tab.matches(t) for tab in self.tabs)

    def next_times(self, after: datetime, count: int = 5, tz: tzinfo | None = None) -> list[datetime]:
        """The next `count` run times strictly after `after`.

        Times are wall-clock times of the spec's `TZ=` zone, else of `tz`, else naive like `after`.
        With a zone, a minute skipped by a daylight-saving jump never runs and a repeated one runs
        twice, as Jenkins' minute-by-minute check does.
        """
        zone: tzinfo | None = ZoneInfo(self.timezone) if self.timezone else tz
        if zone is not None and after.tzinfo is not None:
            start = after.astimezone(zone).replace(tzinfo=None)
        else:
            start = after.replace(tzinfo=None)
        t = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = t + timedelta(days=366 * SEARCH_YEARS)
        found: list[datetime] = []
        while len(found) < count:
            candidates = [m for m in (tab.next_match(t, limit) for tab in self.tabs) if m is not None]
            if not candidates:
                break
            t = min(candidates)
            found.extend(_instants(t, zone))
            t += timedelta(minutes=1)
        return found[:count]


def _instants(naive: datetime, zone: tzinfo | None) -> list[datetime]:
    """The real instants a wall-clock minute stands for in `zone`: none in a DST gap, two in an overlap."""
    if zone is None:
        return [naive]
    out: list[datetime] = []
    for fold in (0, 1):
        aware = naive.replace(tzinfo=zone, fold=fold)
        back = aware.astimezone(ZoneInfo("UTC")).astimezone(zone)
        if back.replace(tzinfo=None) == naive and all(o.utcoffset() != aware.utcoffset() for o in out):
            out.append(aware)
    return out


def _parse_field(text: str, index: int, rnd: Hash, where: str) -> frozenset[int]:
    name, lo_bound, hi_bound = FIELDS[index], LOWER[index], UPPER[index]
    values: set[int] = set()
    for term in text.split(","):
        m = _TERM.match(term)
        if not m:
            hint = " (a step needs a range: use N-M/S, */S or H/S)" if re.fullmatch(r"\d+/\d+", term) else ""
            raise CronSyntaxError(
                f"{where}{name} field: {term!r} is not valid{hint} "
                "(expected N, N-M, N-M/S, *, */S, H, H/S, H(N-M) or H(N-M)/S, comma-separated)"
            )
        if m["single"] is not None:
            value = _number(m["single"], index, term, where)
            values.add(value)
        elif m["lo"] is not None:
            lo, hi = _number(m["lo"], index, term, where), _number(m["hi"], index, term, where)
            step = _step(m["rstep"], name, term, where)
            if lo > hi:
                raise CronSyntaxError(f"{where}{name} field {term!r}: range start {lo} is after its end {hi}")
            values.update(range(lo, hi + 1, step))
        elif term.startswith("*"):
            values.update(range(lo_bound, hi_bound + 1, _step(m["sstep"], name, term, where)))
        else:
            if m["hlo"] is not None:
                lo, hi = _number(m["hlo"], index, term, where), _number(m["hhi"], index, term, where)
                raw_step = m["hrstep"]
            else:
                lo, hi, raw_step = lo_bound, HASH_UPPER[index], m["hstep"]
            step = _step(raw_step, name, term, where)
            if lo > hi:
                raise CronSyntaxError(f"{where}{name} field {term!r}: range start {lo} is after its end {hi}")
            if step > hi - lo + 1:
                raise CronSyntaxError(
                    f"{where}{name} field {term!r}: step {step} is larger than the range {lo}-{hi} "
                    f"(expected 1 to {hi - lo + 1})"
                )
            if step > 1:
                values.update(range(lo + rnd.next(step), hi + 1, step))
            else:  # H or H/1: one value, not every value
                values.add(lo + rnd.next(hi - lo + 1))
    if index == 4 and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


def _number(text: str, index: int, term: str, where: str) -> int:
    value = int(text)
    if not LOWER[index] <= value <= UPPER[index]:
        raise CronSyntaxError(
            f"{where}{FIELDS[index]} field {term!r}: {value} is out of range "
            f"(expected {LOWER[index]} to {UPPER[index]})"
        )
    return value


def _step(text: str | None, name: str, term: str, where: str) -> int:
    step = int(text) if text is not None else 1
    if step < 1:
        raise CronSyntaxError(f"{where}{name} field {term!r}: step must be a positive number (got {step})")
    return step


def _parse_line(line: str, rnd: Hash, where: str) -> CronTab:
    text = line
    if text.startswith("@"):
        if text not in ALIASES:
            raise CronSyntaxError(f"{where}unknown alias {text!r} (expected one of {', '.join(ALIASES)})")
        text = ALIASES[text]
    parts = _FIELD_SEP.split(text)
    if len(parts) != 5:
        raise CronSyntaxError(
            f"{where}{line!r} has {len(parts)} field(s); expected 5: minute hour day-of-month month day-of-week"
            " (or an alias like @daily)"
        )
    sets = [_parse_field(part, i, rnd, where) for i, part in enumerate(parts)]
    tab = CronTab(line, *sets)
    _check_possible(tab, where)
    return tab


def _check_possible(tab: CronTab, where: str) -> None:
    """Refuse a line whose day-of-month never occurs in its months (e.g. 30 February)."""
    longest = {m: 29 if m == 2 else calendar.monthrange(2001, m)[1] for m in range(1, 13)}
    if not any(d <= longest[m] for m in tab.months for d in tab.days):
        days = ",".join(str(d) for d in sorted(tab.days))
        months = ",".join(str(m) for m in sorted(tab.months))
        raise CronSyntaxError(f"{where}{tab.line!r} never fires: day(s) {days} do not occur in month(s) {months}")


def parse(expression: str, job_name: str | None = None, hash: Hash | None = None) -> CronTabList:
    """Parse a Jenkins trigger spec; `job_name` (the job's full name) seeds `H` as Jenkins seeds it."""
    rnd: Hash = hash if hash is not None else (jenkins_hash(job_name) if job_name is not None else ZeroHash())
    lines = expression.strip().splitlines() if expression else []
    multi = len(lines) > 1
    tabs: list[CronTab] = []
    timezone: str | None = None
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        where = f"line {number}: " if multi else ""
        if number == 1 and line.startswith("TZ="):
            timezone = _zone(line[3:], where)
            continue
        if not line or line.startswith("#"):
            continue
        tabs.append(_parse_line(line, rnd, where))
    if not tabs:
        raise CronSyntaxError(
            "no schedule in the cron expression (expected five fields, e.g. 'H 3 * * *', or an alias like '@daily')"
        )
    return CronTabList(expression, tuple(tabs), timezone)


def _zone(name: str, where: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronSyntaxError(
            f"{where}invalid or unsupported time zone {name!r} (expected an IANA name like Europe/Berlin)"
        ) from None
    return name
