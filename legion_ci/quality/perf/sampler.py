"""A Locust plugin the perf runner loads beside every locustfile (`-f LOCUSTFILE,sampler.py`): it counts each
request into half-second bins from the test's start (legion_ci.quality.perf.results.Sampler) and writes them to
`<csv prefix>_samples.csv` when Locust quits. The report's throughput plot, its latency plot and the headline
throughput are all read from that one file, so they agree; Locust's own history is a 10-second trailing
average, written once a second.
"""

from __future__ import annotations

import csv
import logging
import time
from typing import Any

import gevent
from locust import events, stats

from legion_ci.quality.perf.results import Sampler

SUFFIX = "_samples.csv"
SAMPLER = Sampler()
_ENVIRONMENT: list[Any] = []  # Locust's Environment, once init has run


def _users() -> int:
    runner = getattr(_ENVIRONMENT[0], "runner", None) if _ENVIRONMENT else None
    return int(getattr(runner, "user_count", 0) or 0)


def _on_init(environment: Any, **_: Any) -> None:
    _ENVIRONMENT[:] = [environment]
    # gevent's loop caches its clock; after seconds of imports on a busy machine it is that far behind, and
    # the --run-time timer Locust sets next would fire that much early (a 5 s test ran 2.1 s here).
    gevent.get_hub().loop.update_now()


def _on_test_start(**_: Any) -> None:
    SAMPLER.begin(time.time())


def _on_request(response_time: float | None = None, exception: Any = None, **_: Any) -> None:
    SAMPLER.record(time.time(), float(response_time or 0.0), exception is not None, _users())


def _on_quitting(environment: Any, **_: Any) -> None:
    options = environment.parsed_options
    prefix = getattr(options, "csv_prefix", None) if options is not None else None
    if prefix:
        SAMPLER.write(f"{prefix}{SUFFIX}")
        _final_stats(environment, f"{prefix}_stats.csv")


def _final_stats(environment: Any, path: str) -> None:
    """Rewrite locust_stats.csv with the final numbers: Locust rewrites it once a second and not at the end, so
    the requests answered in the last second (while users stop) were missing from it."""
    try:
        writer = stats.StatsCSV(environment, stats.PERCENTILES_TO_REPORT)
        with open(path, "w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh)
            out.writerow(writer.requests_csv_columns)
            writer._requests_data_rows(out)  # Locust's own rows, as its writer makes them
    except Exception as exc:  # a Locust without these keeps its own file; the run is not lost for it
        logging.getLogger(__name__).warning("cannot rewrite %s with the final numbers: %s", path, exc)


for _hook, _listener in (
    (events.init, _on_init),
    (events.test_start, _on_test_start),
    (events.request, _on_request),
    (events.quitting, _on_quitting),
):
    _hook.add_listener(_listener)  # type: ignore[no-untyped-call]  # Locust's EventHook is untyped
