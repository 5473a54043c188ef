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

Beside each wall time, the CPU seconds (user + system) the process spent to get there: on a machine
shared with other work, wall time measures the queue; CPU time is close to what the wall time is on an
idle machine (these start-ups are single-threaded). Read the ratios and the CPU times on a loaded machine.
Results go to bench/startup/results/ (JSON and Markdown).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
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


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of COMMAND, which must succeed."""
    cpu, start = children_cpu(), time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=ROOT)
    return time.perf_counter() - start, children_cpu() - cpu


def wall(command: list[str], env: dict[str, str] | None = None) -> float:
    return timed(command, env)[0]


def bench_cli(runs: int) -> dict[str, dict[str, float]]:
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "legion-ci --version": legion("--version"),
        "legion-ci --help": legion("--help"),
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            times[name].append(timed(command))
    return {
        name: {"wall_s": statistics.median(w for w, _ in values), "cpu_s": statistics.median(c for _, c in values)}
        for name, values in times.items()
    }


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used so far, across its exec()s."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def time_to_first_answer(command: list[str], env: dict[str, str], timeout: float = 120.0) -> tuple[float, float]:
    """(wall, CPU) seconds from starting COMMAND --port P until GET /health/ready answers 200; the process
    is stopped."""
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
        return time.perf_counter() - start, process_cpu(proc.pid)
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
    ours: list[tuple[float, float]] = []
    floor: list[tuple[float, float]] = []
    for i in range(rounds):
        pair = [(ours, serve), (floor, bare)] if i % 2 == 0 else [(floor, bare), (ours, serve)]
        for into, command in pair:
            into.append(time_to_first_answer(command, env))
        log(f"  round {i + 1}: legion-ci serve {ours[-1][0]:.3f}s, bare uvicorn {floor[-1][0]:.3f}s")
    ours_wall, floor_wall = statistics.median(w for w, _ in ours), statistics.median(w for w, _ in floor)
    ours_cpu, floor_cpu = statistics.median(c for _, c in ours), statistics.median(c for _, c in floor)
    return {
        "legion_serve_cold_s": cold[0],
        "legion_serve_cold_cpu_s": cold[1],
        "legion_serve_s": ours_wall,
        "legion_serve_cpu_s": ours_cpu,
        "bare_uvicorn_s": floor_wall,
        "bare_uvicorn_cpu_s": floor_cpu,
        "ratio": ours_wall / floor_wall,
        "cpu_ratio": ours_cpu / floor_cpu,
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
    process_cpu_s: dict[str, float] = {}
    try:
        for name in PUSH_STAGES:
            args = [name, str(IRIS), "--run-id", run_id] if name == "validate" else [name, "--run-id", run_id]
            process_wall[name], process_cpu_s[name] = timed(legion(*args), env_for(home))
        recorded = stage_seconds(home, run_id)
    finally:
        clean_up(home)
    overhead = {name: process_wall[name] - recorded.get(name, 0.0) for name in PUSH_STAGES}
    return {
        "run_wall_s": run_wall,
        "run_stage_s": in_one,
        "stage_process_wall_s": process_wall,
        "stage_process_cpu_s": process_cpu_s,
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
    serve = report["serve"]
    lines = [
        f"# Start-up, {report['when']} ({report['cpus']} CPUs, load average {load})",
        "",
        "| command | median wall s | median CPU s |",
        "|---|---|---|",
        *(f"| `{name}` | {t['wall_s']:.3f} | {t['cpu_s']:.3f} |" for name, t in report["cli_s"].items()),
        "",
        "| server | time to first answer s | CPU s until then |",
        "|---|---|---|",
        f"| `legion-ci serve`, first start (empty plan cache) | {serve['legion_serve_cold_s']:.3f} | "
        f"{serve['legion_serve_cold_cpu_s']:.3f} |",
        f"| `legion-ci serve` (median) | {serve['legion_serve_s']:.3f} | {serve['legion_serve_cpu_s']:.3f} |",
        f"| bare uvicorn app (median) | {serve['bare_uvicorn_s']:.3f} | {serve['bare_uvicorn_cpu_s']:.3f} |",
        f"| **ratio** legion-ci serve / bare uvicorn | **{serve['ratio']:.2f}x** | {serve['cpu_ratio']:.2f}x |",
    ]
    pipeline = report.get("pipeline")
    if pipeline:
        lines += [
            "",
            f"`legion-ci run examples/iris`, fresh LEGION_HOME: **{pipeline['run_wall_s']:.1f} s** wall.",
            "",
            "| stage | in `run` s | own process: wall s | its CPU s | its stage s | process overhead s |",
            "|---|---|---|---|---|---|",
        ]
        for name in PUSH_STAGES:
            lines.append(
                f"| {name} | {pipeline['run_stage_s'].get(name, 0.0):.2f} | "
                f"{pipeline['stage_process_wall_s'][name]:.2f} | {pipeline['stage_process_cpu_s'][name]:.2f} | "
                f"{pipeline['stage_recorded_s'].get(name, 0.0):.2f} | "
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
