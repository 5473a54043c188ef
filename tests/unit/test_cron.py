"""legion_ci.core.cron against Jenkins' own test vectors (core/src/test/java/hudson/scheduler/CronTabTest.java).

The expected times below are the ones Jenkins' CronTabTest asserts for Hash.from("stuff"), "junk" and
"seed"; matching them shows the MD5 -> java.util.Random -> H chain is Jenkins' bit for bit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from legion_ci.core import cron


def ceil(expression: str, seed: str | None, t: datetime) -> datetime:
    """Jenkins' CronTab.ceil: the first run time at or after t."""
    return cron.parse(expression, seed).next_times(t - timedelta(minutes=1), 1)[0]


T = datetime(2013, 3, 21, 16, 21)


@pytest.mark.parametrize(
    ("expression", "seed", "expected"),
    [
        ("H 17 * * *", "stuff", datetime(2013, 3, 21, 17, 56)),
        ("H * * * *", "stuff", datetime(2013, 3, 21, 16, 56)),
        ("@hourly", "stuff", datetime(2013, 3, 21, 16, 56)),
        ("@hourly", "junk", datetime(2013, 3, 21, 17, 20)),
        ("H H(12-13) * * *", "stuff", datetime(2013, 3, 22, 13, 56)),
    ],
)
def test_hashed_minute_matches_jenkins(expression: str, seed: str, expected: datetime) -> None:
    assert ceil(expression, seed, T) == expected


@pytest.mark.parametrize(
    ("expression", "seed", "start", "expected"),
    [
        ("H/15 * * * *", "stuff", datetime(2013, 3, 21, 16, 21), datetime(2013, 3, 21, 16, 26)),
        ("H/15 * * * *", "stuff", datetime(2013, 3, 21, 16, 31), datetime(2013, 3, 21, 16, 41)),
        ("H/15 * * * *", "stuff", datetime(2013, 3, 21, 16, 42), datetime(2013, 3, 21, 16, 56)),
        ("H/15 * * * *", "stuff", datetime(2013, 3, 21, 16, 59), datetime(2013, 3, 21, 17, 11)),
        ("H(0-15)/3 * * * *", "junk", datetime(2013, 3, 21, 0, 0), datetime(2013, 3, 21, 0, 2)),
        ("H(0-3)/4 * * * *", "junk", datetime(2013, 3, 21, 0, 0), datetime(2013, 3, 21, 0, 2)),
        ("H(0-3)/4 * * * *", "junk", datetime(2013, 3, 21, 0, 5), datetime(2013, 3, 21, 1, 2)),
    ],
)
def test_hash_skips_match_jenkins(expression: str, seed: str, start: datetime, expected: datetime) -> None:
    assert ceil(expression, seed, start) == expected


def test_repeated_hash_lines_share_one_random_like_jenkins() -> None:
    tabs = cron.parse("H * * * *\nH * * * *", "seed")
    assert [m for m in range(60) if tabs.matches(datetime(2013, 4, 3, 11, m))] == [35, 56]


def test_timezone_line_like_jenkins() -> None:
    tabs = cron.parse("TZ=Australia/Sydney\nH * * * *\nH * * * *", "seed")
    assert tabs.timezone == "Australia/Sydney"
    assert [m for m in range(60) if tabs.matches(datetime(2013, 4, 3, 11, m))] == [35, 56]


class _Last:
    def next(self, n: int) -> int:
        return n - 1


class _One:
    def next(self, n: int) -> int:
        return 1


@pytest.mark.parametrize(
    ("hash_", "minutes", "hours", "days", "months"),
    [
        (_Last(), [59], [8], [3, 6, 9, 12, 15, 18, 21, 24, 27], [4, 8]),
        (_One(), [1], [6], [2, 5, 8, 11, 14, 17, 20, 23, 26], [2, 6, 10]),
    ],
)
def test_hash_ranges_and_steps_match_jenkins(
    hash_: cron.Hash, minutes: list[int], hours: list[int], days: list[int], months: list[int]
) -> None:
    tab = cron.parse("H H(5-8) H/3 H(1-10)/4 *", hash=hash_).tabs[0]
    assert (sorted(tab.minutes), sorted(tab.hours), sorted(tab.days), sorted(tab.months)) == (
        minutes,
        hours,
        days,
        months,
    )


@pytest.mark.parametrize("expression", ["0 0 1 * 0", "0 0 1 * 7"])
def test_day_of_month_and_day_of_week_must_both_match(expression: str) -> None:
    # CronTabTest.testCeil3: the first 1st-of-the-month that is a Sunday in 2010 is 1 August.
    assert ceil(expression, None, datetime(2010, 1, 1, 15, 55)) == datetime(2010, 8, 1, 0, 0)


def test_without_a_job_name_h_is_the_lowest_value_as_with_jenkins_hash_zero() -> None:
    tab = cron.parse("H H H H H").tabs[0]
    assert (tab.minutes, tab.hours, tab.days, tab.months, tab.weekdays) == ({0}, {0}, {1}, {1}, {0})


def test_range_bounds_accepted_like_jenkins() -> None:
    cron.parse("H(0-59) H(0-23) H(1-31) H(1-12) H(0-7)")


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("H(0-3)/15 * * * *", "minute field 'H(0-3)/15': step 15 is larger than the range 0-3 (expected 1 to 4)"),
        ("H H(12-24) * * *", "hour field 'H(12-24)': 24 is out of range (expected 0 to 23)"),
        ("H(33-66) * * * *", "minute field 'H(33-66)': 66 is out of range (expected 0 to 59)"),
        ("5/10 * * * *", "a step needs a range"),
        ("*/0 * * * *", "step must be a positive number"),
        ("10-5 * * * *", "range start 10 is after its end 5"),
        ("H(9-3) * * * *", "range start 9 is after its end 3"),
        ("H H * *", "has 4 field(s); expected 5"),
        ("H H * * * *", "has 6 field(s); expected 5"),
        ("@dayly", "unknown alias '@dayly'"),
        ("h * * * *", "'h' is not valid"),
        ("H H * JAN *", "'JAN' is not valid"),
        ("", "no schedule"),
        ("# just a comment", "no schedule"),
        ("TZ=Mars/Olympus\nH * * * *", "invalid or unsupported time zone 'Mars/Olympus'"),
        ("H * * * *\nH H 32 * *", "line 2: day-of-month field '32': 32 is out of range (expected 1 to 31)"),
        ("H H 30 2 *", "never fires: day(s) 30 do not occur in month(s) 2"),
    ],
)
def test_bad_expressions_are_refused_with_the_reason(expression: str, message: str) -> None:
    with pytest.raises(cron.CronSyntaxError) as err:
        cron.parse(expression, "job")
    assert message in str(err.value)


def test_aliases_expand_as_jenkins_does() -> None:
    midnight = cron.parse("@midnight", "x").tabs[0]
    assert len(midnight.minutes) == 1 and midnight.hours <= {0, 1, 2}
    weekly = cron.parse("@weekly", "x").tabs[0]
    assert len(weekly.weekdays) == 1 and len(weekly.days) == 31


def test_day_of_week_seven_is_sunday() -> None:
    assert cron.parse("0 0 * * 7").tabs[0].weekdays == {0}
    assert cron.parse("0 0 * * 5-7").tabs[0].weekdays == {5, 6, 0}


def test_comments_and_blank_lines_are_ignored_and_lines_are_ored() -> None:
    tabs = cron.parse("# nightly\n\n0 3 * * *\n30 15 * * 0\n")
    assert len(tabs.tabs) == 2
    times = tabs.next_times(datetime(2025, 1, 4, 12, 0), 3)  # a Saturday
    assert times == [datetime(2025, 1, 5, 3, 0), datetime(2025, 1, 5, 15, 30), datetime(2025, 1, 6, 3, 0)]


def test_leap_day_found_years_ahead() -> None:
    assert cron.parse("0 12 29 2 *").next_times(datetime(2025, 3, 1), 1) == [datetime(2028, 2, 29, 12, 0)]


def test_daylight_saving_gap_is_skipped_and_overlap_runs_twice() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    spring = cron.parse("TZ=Europe/Berlin\n30 2 * * *").next_times(datetime(2025, 3, 29, 12, 0, tzinfo=berlin), 2)
    assert [t.date().isoformat() for t in spring] == ["2025-03-31", "2025-04-01"]  # 30 March 02:30 does not exist
    autumn = cron.parse("TZ=Europe/Berlin\n30 2 * * *").next_times(datetime(2025, 10, 25, 12, 0, tzinfo=berlin), 2)
    assert [t.utcoffset() for t in autumn] == [timedelta(hours=2), timedelta(hours=1)]  # 26 October, twice
    assert all(t.day == 26 and t.hour == 2 and t.minute == 30 for t in autumn)


def test_java_random_matches_known_java_values() -> None:
    # new java.util.Random(42).nextInt(10) -> 0, 3, 8, 4, 0 (documented Java behaviour)
    rnd = cron.JavaRandom(42)
    assert [rnd.next_int(10) for _ in range(5)] == [0, 3, 8, 4, 0]
