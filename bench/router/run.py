"""Router overhead: the same iris model server called directly and through `legion-ci router`.

    python bench/router/run.py [--duration 5] [--rounds 3] [--connections 1,16] [--auth]

One model server (`legion-ci serve`, one worker; auth and capture off unless --auth, so the figures are
the proxy's cost and not the model's) and one router in front of it, routing from a registry in a temporary
LEGION_HOME. wrk drives each of them in alternating rounds (direct, router, direct, ...), a closed loop with
a Lua POST script: one connection gives the latency a lone caller sees, more connections the throughput.
The table takes each figure's median over the rounds; "added" is router minus direct. Results go to
bench/router/results/ (JSON and Markdown). Needs wrk (Debian package wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = HERE / "results"
sys.path.insert(0, str(ROOT))

from legion_ci.core.processes import start_server, stop_pid  # noqa: E402
from legion_ci.core.registry import Registry  # noqa: E402
from legion_ci.core.settings import load_settings  # noqa: E402
from legion_ci.deploy import local_router  # noqa: E402

UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


POST_SCRIPT = HERE.parent / "serving" / "post.lua"  # the same request the serving benchmark sends


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def train(home: Path) -> str:
    """The iris artifact, trained by the pipeline's own train stage into `home`."""
    env = {**os.environ, "LEGION_HOME": str(home)}
    env.pop("LEGION_REGISTRY_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "legion_ci", "train", str(ROOT / "examples" / "iris"), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return str(json.loads(done.stdout)["outputs"]["path"])


def wrk(url: str, connections: int, duration: float, token: str | None) -> dict[str, float]:
    """One wrk run: req/s, p50 and p99 in ms, and the count of errors (non-2xx and socket errors)."""
    threads = min(connections, 2)
    env = {**os.environ, "WRK_TOKEN": token or ""}
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--latency",
            "-s",
            str(POST_SCRIPT),
            url,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    figures: dict[str, float] = {"errors": 0.0}
    for pct in ("50", "99"):
        found = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert found, out
        figures[f"p{pct}"] = float(found[1]) * UNIT[found[2]]
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    figures["rps"] = float(rps[1]) if rps else 0.0
    for pattern in (
        r"Non-2xx or 3xx responses: (\d+)",
        r"Socket errors: connect (\d+), read (\d+), write (\d+), "
        r"timeout (\d+)",
    ):
        found = re.search(pattern, out)
        if found:
            figures["errors"] += sum(float(g) for g in found.groups())
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--connections", default="1,16", help="wrk connection counts (default 1,16)")
    parser.add_argument("--auth", action="store_true", help="keep JWT auth on (both paths pay for it)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        log("error: wrk is not installed (apt-get install wrk)")
        return 2
    connections = [int(c) for c in args.connections.split(",")]
    home = Path(tempfile.mkdtemp(prefix="legion-bench-router-"))
    settings = load_settings(str(home), f"sqlite:///{home / 'registry.db'}")
    registry = Registry.from_settings(settings)
    server: dict | None = None
    try:
        log("training iris with the train stage ...")
        path = train(home)
        version = registry.versions("iris")[-1]
        flags = [] if args.auth else ["--no-auth"]
        server = start_server(path, home / "server.log", {"LEGION_HOME": str(home)}, [*flags, "--no-capture"])
        registry.add_deployment("iris", version.id, "local", 100, [server], {"version": version.version})
        router, _ = local_router.ensure(settings, port=0)
        token = None
        if args.auth:
            from legion_ci.auth.jwt import create_token, load_or_create_secret

            token = create_token(load_or_create_secret(settings), "iris", None, ttl_seconds=3600)
        targets = {
            "direct": f"{server['url']}/api/model/iris/{version.version}/invoke",
            "router": f"{router.url}/api/model/iris/invoke",
        }
        log(f"direct {targets['direct']}\nrouter {targets['router']}")
        for url in targets.values():  # warm up: connections, caches, the router's first table
            wrk(url, 4, 1.0, token)
        runs: dict[str, dict[int, list[dict[str, float]]]] = {k: {c: [] for c in connections} for k in targets}
        for round_no in range(1, args.rounds + 1):
            for c in connections:
                for name, url in targets.items():
                    figures = wrk(url, c, args.duration, token)
                    runs[name][c].append(figures)
                    log(
                        f"round {round_no} c{c} {name}: p50 {figures['p50']:.3f} ms, p99 {figures['p99']:.3f} ms, "
                        f"{figures['rps']:.0f} req/s, errors {figures['errors']:.0f}"
                    )
        report = summarize(runs, connections, args)
    finally:
        local_router.stop(settings)
        if server:
            stop_pid(int(server["pid"]))
        registry.close()
        shutil.rmtree(home, ignore_errors=True)
    write(report)
    return 0


def summarize(
    runs: dict[str, dict[int, list[dict[str, float]]]], connections: list[int], args: argparse.Namespace
) -> dict:
    rows = []
    for c in connections:
        med = {
            name: {k: statistics.median(r[k] for r in runs[name][c]) for k in ("p50", "p99", "rps", "errors")}
            for name in runs
        }
        rows.append(
            {
                "connections": c,
                "direct": med["direct"],
                "router": med["router"],
                "added_p50_ms": med["router"]["p50"] - med["direct"]["p50"],
                "added_p99_ms": med["router"]["p99"] - med["direct"]["p99"],
                "throughput_ratio": med["router"]["rps"] / med["direct"]["rps"] if med["direct"]["rps"] else 0.0,
            }
        )
    return {
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H%M%S"),
        "cpus": os.cpu_count(),
        "command": "python bench/router/run.py " + " ".join(sys.argv[1:]),
        "rounds": args.rounds,
        "duration_s": args.duration,
        "auth": args.auth,
        "load_average": os.getloadavg()[0],
        "rows": rows,
        "raw": runs,
    }


def write(report: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / report["when"]
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# Router overhead {report['when']}",
        "",
        f"`{report['command']}`, {report['cpus']} CPUs, load average {report['load_average']:.1f} at the end, "
        f"{report['rounds']} rounds of {report['duration_s']:g} s, auth {'on' if report['auth'] else 'off'}, "
        "capture off; medians over the rounds",
        "",
        "| connections | direct p50 ms | router p50 ms | added p50 ms | direct p99 ms | router p99 ms | "
        "added p99 ms | direct req/s | router req/s | router/direct | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        d, t = r["direct"], r["router"]
        lines.append(
            f"| {r['connections']} | {d['p50']:.3f} | {t['p50']:.3f} | {r['added_p50_ms']:+.3f} | "
            f"{d['p99']:.3f} | {t['p99']:.3f} | {r['added_p99_ms']:+.3f} | {d['rps']:.0f} | {t['rps']:.0f} | "
            f"{r['throughput_ratio']:.2f}x | {d['errors'] + t['errors']:.0f} |"
        )
    one = next((r for r in report["rows"] if r["connections"] == 1), report["rows"][0])
    verdict = "meets" if one["added_p50_ms"] < 1.0 else "misses"
    lines += [
        "",
        f"Added latency at p50 with one connection: {one['added_p50_ms']:.3f} ms ({verdict} the goal of < 1 ms).",
    ]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
