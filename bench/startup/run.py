"""Start-up: what each legion-ci process pays before it does its work.

    python bench/startup/run.py [--rounds 5] [--cli-runs 10] [--skip-pipeline]

1. CLI: `legion-ci --version` and `legion-ci --help` against `python -c pass` (the interpreter's own start),
   median wall of --cli-runs runs each, interleaved.
2. Serve: time to first answer (process start until GET /health/ready answers 200) of `legion-ci serve`
   and of a bare uvicorn app (bench/startup/bare_app.py), both started the same way (`python ... --port P`,
   uvloop, httptools), in alternating rounds; the ratio of the medians. The first `legion-ci serve` of the
   artifact (empty plan cache: it loads scikit-learn and verifies the plan) is reported on its own.
3. Pipeline: `legion-ci run examples/iris` from a fresh LEGION_HOME (wall and each stage's seconds, the
   local deploy among them); then the same push flow the way Jenkins runs it, one `legion-ci STAGE`
   process per stage, each process's wall against the seconds its stage recorded: the difference is the
   process's own overhead (interpreter, imports, registry).

Read the ratios on a loaded machine, the absolutes on an idle one. Results go to bench/startup/results/
(JSON and Markdown).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = HERE / "results"
IRIS = ROOT / "examples" / "iris"
PUSH_STAGES = ("validate", "train", "gate", "perf", "package", "deploy", "smoke", "promote")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEGION_")}
    return {**env, "LEGION_HOME": str(home)}


def legion(*args: str) -> list[str]:
    return [sys.executable, "-m", "legion_ci", *args]


def wall(command: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=ROOT)
    return time.perf_counter() - start


def bench_cli(runs: int) -> dict[str, float]:
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "legion-ci --version": legion("--version"),
        "legion-ci --help": legion("--help"),
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            times[name].append(wall(command))
    return {name: statistics.median(values) for name, values in times.items()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/health/ready")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def time_to_first_answer(command: list[str], env: dict[str, str], timeout: float = 120.0) -> float:
    """Seconds from starting COMMAND --port P until GET /health/ready answers 200; the process is stopped."""
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*command, "--port", str(port)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while not answers(port):
            if proc.poll() is not None:
                raise RuntimeError(f"{' '.join(command)} exited with {proc.returncode} before answering")
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"{' '.join(command)} did not answer in {timeout:.0f}s")
            time.sleep(0.005)
        return time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def train(home: Path) -> str:
    done = subprocess.run(
        legion("train", str(IRIS), "--json"), env=env_for(home), capture_output=True, text=True, check=True, cwd=ROOT
    )
    return str(json.loads(done.stdout)["outputs"]["path"])


def bench_serve(home: Path, rounds: int) -> dict[str, Any]:
    artifact = train(home)
    env = env_for(home)
    serve = legion("serve", artifact, "--no-auth", "--no-capture")
    bare = [sys.executable, str(HERE / "bare_app.py")]
    cold = time_to_first_answer(serve, env)  # empty plan cache: scikit-learn loaded, plan verified and cached
    ours: list[float] = []
    floor: list[float] = []
    for i in range(rounds):
        pair = [(ours, serve), (floor, bare)] if i % 2 == 0 else [(floor, bare), (ours, serve)]
        for into, command in pair:
            into.append(time_to_first_answer(command, env))
        log(f"  round {i + 1}: legion-ci serve {ours[-1]:.3f}s, bare uvicorn {floor[-1]:.3f}s")
    return {
        "legion_serve_cold_s": cold,
        "legion_serve_s": statistics.median(ours),
        "bare_uvicorn_s": statistics.median(floor),
        "ratio": statistics.median(ours) / statistics.median(floor),
        "rounds": {"legion_serve": ours, "bare_uvicorn": floor},
    }


def stage_seconds(home: Path, run_id: str) -> dict[str, float]:
    sys.path.insert(0, str(ROOT))
    from legion_ci.core.registry import Registry
    from legion_ci.core.settings import load_settings

    registry = Registry.from_settings(load_settings(str(home)))
    try:
        return {name: float(rec.seconds or 0.0) for name, rec in registry.stages(run_id).items()}
    finally:
        registry.close()


def clean_up(home: Path) -> None:
    env = env_for(home)
    subprocess.run(legion("undeploy", "iris"), env=env, cwd=ROOT, capture_output=True)
    subprocess.run(legion("router", "stop"), env=env, cwd=ROOT, capture_output=True)


def bench_pipeline(workdir: Path) -> dict[str, Any]:
    home = workdir / "run-home"
    try:
        start = time.perf_counter()
        done = subprocess.run(
            legion("run", str(IRIS), "--json"), env=env_for(home), capture_output=True, text=True, cwd=ROOT
        )
        run_wall = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"legion-ci run failed ({done.returncode}):\n{done.stderr[-2000:]}")
        summary = json.loads(done.stdout)
    finally:
        clean_up(home)
    in_one = {row["stage"]: row.get("seconds") or 0.0 for row in summary["stages"]}

    home = workdir / "jenkins-home"
    run_id = f"iris-startup-bench-{os.getpid()}"
    process_wall: dict[str, float] = {}
    try:
        for name in PUSH_STAGES:
            args = [name, str(IRIS), "--run-id", run_id] if name == "validate" else [name, "--run-id", run_id]
            process_wall[name] = wall(legion(*args), env_for(home))
        recorded = stage_seconds(home, run_id)
    finally:
        clean_up(home)
    overhead = {name: process_wall[name] - recorded.get(name, 0.0) for name in PUSH_STAGES}
    return {
        "run_wall_s": run_wall,
        "run_stage_s": in_one,
        "stage_process_wall_s": process_wall,
        "stage_recorded_s": recorded,
        "stage_process_overhead_s": overhead,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="serve start-ups of each kind (default 5)")
    parser.add_argument("--cli-runs", type=int, default=10, help="runs of each CLI command (default 10)")
    parser.add_argument("--skip-pipeline", action="store_true", help="leave out the two pipeline runs")
    args = parser.parse_args()
    report: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory(prefix="legion-startup-bench-") as tmp:
        workdir = Path(tmp)
        log("== CLI")
        report["cli_s"] = bench_cli(args.cli_runs)
        log("== serve: time to first answer")
        report["serve"] = bench_serve(workdir / "serve-home", args.rounds)
        if not args.skip_pipeline:
            log("== pipeline: legion-ci run examples/iris, then one process per stage")
            report["pipeline"] = bench_pipeline(workdir)
    write(report)
    return 0


def markdown(report: dict[str, Any]) -> str:
    load = ", ".join(f"{x:.1f}" for x in report["load_average"])
    lines = [
        f"# Start-up, {report['when']} ({report['cpus']} CPUs, load average {load})",
        "",
        "| command | median wall s |",
        "|---|---|",
        *(f"| `{name}` | {seconds:.3f} |" for name, seconds in report["cli_s"].items()),
        "",
        "| server | time to first answer s |",
        "|---|---|",
        f"| `legion-ci serve`, first start (empty plan cache) | {report['serve']['legion_serve_cold_s']:.3f} |",
        f"| `legion-ci serve` (median) | {report['serve']['legion_serve_s']:.3f} |",
        f"| bare uvicorn app (median) | {report['serve']['bare_uvicorn_s']:.3f} |",
        f"| **ratio** legion-ci serve / bare uvicorn | **{report['serve']['ratio']:.2f}x** |",
    ]
    pipeline = report.get("pipeline")
    if pipeline:
        lines += [
            "",
            f"`legion-ci run examples/iris`, fresh LEGION_HOME: **{pipeline['run_wall_s']:.1f} s** wall.",
            "",
            "| stage | in `run` s | own process: wall s | its stage s | process overhead s |",
            "|---|---|---|---|---|",
        ]
        for name in PUSH_STAGES:
            lines.append(
                f"| {name} | {pipeline['run_stage_s'].get(name, 0.0):.2f} | "
                f"{pipeline['stage_process_wall_s'][name]:.2f} | {pipeline['stage_recorded_s'].get(name, 0.0):.2f} | "
                f"{pipeline['stage_process_overhead_s'][name]:.2f} |"
            )
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / datetime.now(UTC).strftime("%Y-%m-%dT%H%M%S")
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    stem.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
