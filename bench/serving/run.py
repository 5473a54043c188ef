"""Benchmark legion-ci's model server against its peers on the same iris model, one worker each.

    python bench/serving/run.py [--duration 10] [--rounds 2] [--skip-peers]

Peers: legion-ci (JWT, validation, metrics on; capture on and off), the bare Starlette+uvicorn+orjson floor
app, `mlflow models serve --env-manager local`, and MLServer with mlserver-sklearn. mlflow and MLServer
live in bench/.venv (made here from bench/requirements.txt), never in the project's own environment.
All servers are started once and measured in alternating rounds: closed loop with wrk (16 and 64
connections, a Lua POST script) and a fixed 500 req/s with hey; the table takes each figure's median
over the rounds. Results go to bench/serving/results/ (JSON and Markdown). Needs wrk and hey (Debian).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BENCH_VENV = ROOT / "bench" / ".venv"
REQUIREMENTS = ROOT / "bench" / "requirements.txt"
RESULTS = HERE / "results"
ROW = [5.1, 3.5, 1.4, 0.2]
FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
HEY_RATE, HEY_CONNECTIONS = 500, 5
sys.path.insert(0, str(ROOT))


@dataclass
class Peer:
    name: str
    command: list[str]
    url: str
    body: str
    ready: str
    headers: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    runs: list[dict[str, float]] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- setup ----------------------------------------------------------------------------------------------
def ensure_bench_venv() -> Path:
    """bench/.venv with bench/requirements.txt installed (reinstalled when the file changes)."""
    stamp = BENCH_VENV / ".requirements.sha256"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    python = BENCH_VENV / "bin" / "python"
    if python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return python
    log(f"installing the peers into {BENCH_VENV} (mlflow, mlserver) ...")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(digest + "\n")
    return python


def require_tools() -> None:
    missing = [t for t in ("wrk", "hey") if shutil.which(t) is None]
    if missing:
        sys.exit(f"bench: {', '.join(missing)} not found; install them: apt-get install -y {' '.join(missing)}")


def build_models(work: Path, bench_python: Path | None) -> dict[str, Path]:
    """The iris LogisticRegression as a legion-ci artifact, an MLflow model and an MLServer model folder."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from legion_ci.core.artifact import save_model, write_json_atomic
    from legion_ci.core.manifest import ExportedModel, Feature, InputSchema, Manifest

    frame = load_iris(as_frame=True).frame
    x, y = frame.drop(columns=["target"]), frame["target"]
    model = LogisticRegression(max_iter=500).fit(x, y)
    art = work / "artifact"
    art.mkdir(parents=True)
    example = x.iloc[[0, 50, 100]]
    exported = ExportedModel(
        **save_model(model, art).model_dump(),
        task="classification",
        classes=[0, 1, 2],
        target="target",
        estimator="sklearn.linear_model.LogisticRegression",
        input_schema=InputSchema(
            features=[Feature(name=n, dtype="float64") for n in FEATURES],
            example=example.to_numpy().tolist(),
            example_predictions=model.predict(example).tolist(),
        ),
    )
    manifest = Manifest(name="iris", version="1.0.0", artifact_id="bench0000000000", model=exported)
    write_json_atomic(art / "manifest.json", manifest.to_json())
    import joblib

    joblib.dump(model, work / "model.joblib")
    mlflow_dir, mlserver_dir = work / "mlflow-model", work / "mlserver"
    mlserver_dir.mkdir()
    script = (
        "import joblib, mlflow.sklearn, sys\n"
        "model = joblib.load(sys.argv[1])\n"
        "mlflow.sklearn.save_model(model, sys.argv[2])\n"
    )
    if bench_python is not None:
        subprocess.run(
            [str(bench_python), "-c", script, str(work / "model.joblib"), str(mlflow_dir)],
            check=True,
            cwd=work,
            env={**os.environ, "MLFLOW_TRACKING_URI": f"file://{work / 'mlruns'}"},
        )
    shutil.copy(work / "model.joblib", mlserver_dir / "model.joblib")
    (mlserver_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "iris",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "1.0.0"},
            }
        )
    )
    return {"artifact": art, "mlflow": mlflow_dir, "mlserver": mlserver_dir}


def peers(models: dict[str, Path], work: Path, bench_bin: Path, include_peers: bool) -> list[Peer]:
    py = sys.executable
    home = work / "legion-home"
    env = {"LEGION_HOME": str(home), "LEGION_JWT_SECRET": hashlib.sha256(os.urandom(32)).hexdigest()}
    from legion_ci.auth.jwt import create_token

    token = create_token(env["LEGION_JWT_SECRET"], "iris", "1.0.0", ttl_seconds=6 * 3600)
    os.environ["LEGION_JWT_MAX_TTL"] = "7h"
    env["LEGION_JWT_MAX_TTL"] = "7h"
    instances = json.dumps({"instances": [ROW]})
    auth = {"Authorization": f"Bearer {token}"}
    out: list[Peer] = []
    for name, extra in (("legion (capture on)", []), ("legion (capture off)", ["--no-capture"])):
        port = free_port()
        out.append(
            Peer(
                name,
                [py, "-m", "legion_ci", "serve", str(models["artifact"]), "--port", str(port), *extra],
                f"http://127.0.0.1:{port}/api/model/iris/1.0.0/invoke",
                instances,
                f"http://127.0.0.1:{port}/health/ready",
                auth,
                env,
            )
        )
    port = free_port()
    out.append(
        Peer(
            "bare starlette (floor)",
            [py, str(HERE / "floor_app.py"), str(models["artifact"]), str(port)],
            f"http://127.0.0.1:{port}/api/model/iris/1.0.0/invoke",
            instances,
            "",
        )
    )
    if include_peers:
        venv_env = {"PATH": f"{bench_bin}{os.pathsep}{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(BENCH_VENV)}
        port = free_port()
        out.append(
            Peer(
                "mlflow models serve",
                [
                    str(bench_bin / "mlflow"),
                    "models",
                    "serve",
                    "-m",
                    str(models["mlflow"]),
                    "--env-manager",
                    "local",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-w",
                    "1",
                ],
                f"http://127.0.0.1:{port}/invocations",
                json.dumps({"dataframe_split": {"columns": FEATURES, "data": [ROW]}}),
                f"http://127.0.0.1:{port}/ping",
                env=venv_env,
            )
        )
        port, grpc, metrics = free_port(), free_port(), free_port()
        (models["mlserver"] / "settings.json").write_text(
            json.dumps(
                {
                    "http_port": port,
                    "grpc_port": grpc,
                    "metrics_port": metrics,
                    "parallel_workers": 0,
                    "host": "127.0.0.1",
                    "debug": False,
                }
            )
        )
        v2 = json.dumps({"inputs": [{"name": "predict", "shape": [1, 4], "datatype": "FP64", "data": ROW}]})
        out.append(
            Peer(
                "mlserver (sklearn)",
                [str(bench_bin / "mlserver"), "start", str(models["mlserver"])],
                f"http://127.0.0.1:{port}/v2/models/iris/infer",
                v2,
                f"http://127.0.0.1:{port}/v2/health/ready",
                env=venv_env,
            )
        )
    return out


# -- running --------------------------------------------------------------------------------------------
def http_ok(peer: Peer) -> bool:
    import httpx

    try:
        if peer.ready:
            return httpx.get(peer.ready, timeout=2).status_code == 200
        return (
            httpx.post(
                peer.url, content=peer.body, headers={"Content-Type": "application/json", **peer.headers}, timeout=2
            ).status_code
            == 200
        )
    except httpx.HTTPError:
        return False


def start(peer: Peer, logs: Path) -> None:
    log(f"starting {peer.name}")
    handle = (logs / f"{re.sub(r'[^a-z0-9]+', '-', peer.name.lower())}.log").open("wb")
    peer.proc = subprocess.Popen(
        peer.command,
        stdout=handle,
        stderr=subprocess.STDOUT,
        cwd=logs,
        env={**os.environ, "PYTHONPATH": str(ROOT), **peer.env},
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if peer.proc.poll() is not None:
            raise SystemExit(f"bench: {peer.name} exited with {peer.proc.returncode}; see {handle.name}")
        if http_ok(peer):
            answer = check_answer(peer)
            log(f"  {peer.name} ready: {answer}")
            return
        time.sleep(0.5)
    raise SystemExit(f"bench: {peer.name} not ready after 180 s; see {handle.name}")


def check_answer(peer: Peer) -> str:
    import httpx

    answer = httpx.post(peer.url, content=peer.body, headers={"Content-Type": "application/json", **peer.headers})
    if answer.status_code != 200:
        raise SystemExit(f"bench: {peer.name} answered {answer.status_code}: {answer.text[:200]}")
    return answer.text[:120]


def stop(peer: Peer) -> None:
    if peer.proc is not None and peer.proc.poll() is None:
        os.killpg(peer.proc.pid, signal.SIGTERM)
        try:
            peer.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(peer.proc.pid, signal.SIGKILL)
            peer.proc.wait(timeout=5)


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants, in MB."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(re.search(r"VmRSS:\s+(\d+)", status)[1])  # type: ignore[index]
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            todo.extend(int(c) for c in children)
        except (OSError, TypeError):
            continue
    return total / 1024


def lua_script(peer: Peer, folder: Path) -> Path:
    path = folder / f"{abs(hash(peer.name))}.lua"
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = {json.dumps(peer.body)}",
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in peer.headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _ms(value: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", value)
    if not m:
        return float("nan")
    return float(m[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m[2]]


def run_wrk(peer: Peer, script: Path, connections: int, duration: int) -> dict[str, float]:
    done = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration}s", "--latency", "-s", str(script), peer.url],
        capture_output=True,
        text=True,
        check=True,
    )
    text = done.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text)[1])  # type: ignore[index]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    socket_errors = re.search(r"Socket errors:.*", text)
    return {
        "rps": rps,
        "p50": _ms(re.search(r"50%\s+(\S+)", text)[1]),  # type: ignore[index]
        "p99": _ms(re.search(r"99%\s+(\S+)", text)[1]),  # type: ignore[index]
        "errors": float(errors[1]) if errors else 0.0,
        "socket_errors": 1.0 if socket_errors else 0.0,
    }


def run_hey(peer: Peer, duration: int) -> dict[str, float]:
    per_worker = HEY_RATE // HEY_CONNECTIONS
    command = [
        "hey",
        "-z",
        f"{duration}s",
        "-c",
        str(HEY_CONNECTIONS),
        "-q",
        str(per_worker),
        "-m",
        "POST",
        "-T",
        "application/json",
        "-d",
        peer.body,
    ]
    for key, value in peer.headers.items():
        command += ["-H", f"{key}: {value}"]
    text = subprocess.run([*command, peer.url], capture_output=True, text=True, check=True).stdout

    def pct(p: str) -> float:
        m = re.search(rf"{p}% in ([\d.]+) secs", text)
        return float(m[1]) * 1000 if m else float("nan")

    codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", text))
    ok = int(codes.get("200", 0))
    total = sum(int(v) for v in codes.values())
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text)[1]),  # type: ignore[index]
        "p50": pct("50"),
        "p99": pct("99"),
        "errors": float(total - ok),
    }


def measure(peer: Peer, work: Path, duration: int) -> dict[str, float]:
    assert peer.proc is not None
    script = lua_script(peer, work)
    subprocess.run(["wrk", "-t", "1", "-c", "16", "-d", "2s", "-s", str(script), peer.url], capture_output=True)
    c16 = run_wrk(peer, script, 16, duration)
    c64 = run_wrk(peer, script, 64, duration)
    fixed = run_hey(peer, duration)
    result = {
        "c16_rps": c16["rps"],
        "c16_p50": c16["p50"],
        "c16_p99": c16["p99"],
        "c64_rps": c64["rps"],
        "c64_p99": c64["p99"],
        "q500_rps": fixed["rps"],
        "q500_p50": fixed["p50"],
        "q500_p99": fixed["p99"],
        "errors": c16["errors"] + c64["errors"] + fixed["errors"],
        "rss_mb": rss_mb(peer.proc.pid),
    }
    log(
        f"  {peer.name}: c16 {c16['rps']:.0f} req/s p99 {c16['p99']:.2f} ms | c64 {c64['rps']:.0f} req/s | "
        f"500/s p50 {fixed['p50']:.2f} p99 {fixed['p99']:.2f} ms | RSS {result['rss_mb']:.0f} MB"
    )
    return result


# -- report ---------------------------------------------------------------------------------------------
def median(peer: Peer, key: str) -> float:
    values = [r[key] for r in peer.runs if r[key] == r[key]]
    return statistics.median(values) if values else float("nan")


def table(all_peers: list[Peer]) -> str:
    head = (
        "| server | c16 req/s | c16 p50 ms | c16 p99 ms | c64 req/s | c64 p99 ms | 500/s p50 ms | 500/s p99 ms "
        "| RSS MB | errors |"
    )
    lines = [head, "|" + "---|" * 10]
    for p in all_peers:
        lines.append(
            f"| {p.name} | {median(p, 'c16_rps'):.0f} | {median(p, 'c16_p50'):.2f} | "
            f"{median(p, 'c16_p99'):.2f} | {median(p, 'c64_rps'):.0f} | {median(p, 'c64_p99'):.2f} | "
            f"{median(p, 'q500_p50'):.2f} | {median(p, 'q500_p99'):.2f} | {median(p, 'rss_mb'):.0f} | "
            f"{sum(r['errors'] for r in p.runs):.0f} |"
        )
    ours = next(p for p in all_peers if p.name == "legion (capture on)")
    lines += [
        "",
        "| legion (capture on) against | c16 throughput | c64 throughput | 500/s p99 | RSS |",
        "|---|---|---|---|---|",
    ]
    for p in all_peers:
        if p is ours:
            continue
        lines.append(
            f"| {p.name} | {median(ours, 'c16_rps') / median(p, 'c16_rps'):.2f}x | "
            f"{median(ours, 'c64_rps') / median(p, 'c64_rps'):.2f}x | "
            f"{median(ours, 'q500_p99') / median(p, 'q500_p99'):.2f}x | "
            f"{median(ours, 'rss_mb') / median(p, 'rss_mb'):.2f}x |"
        )
    off = next((p for p in all_peers if p.name == "legion (capture off)"), None)
    if off is not None:
        cost = 1 - median(ours, "c16_rps") / median(off, "c16_rps")
        lines += ["", f"Capture cost at c16: {cost * 100:.1f}% of throughput (capture on vs off)."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (default 2)")
    parser.add_argument("--skip-peers", action="store_true", help="only legion-ci and the floor app (no bench venv)")
    args = parser.parse_args()
    require_tools()
    bench_python = None if args.skip_peers else ensure_bench_venv()
    work = Path(tempfile.mkdtemp(prefix="legion-bench-"))
    logs = work / "logs"
    logs.mkdir()
    all_peers: list[Peer] = []
    try:
        models = build_models(work, bench_python)
        all_peers = peers(models, work, BENCH_VENV / "bin", not args.skip_peers)
        for peer in all_peers:
            start(peer, logs)
        for round_no in range(1, args.rounds + 1):
            log(f"round {round_no}/{args.rounds}")
            order = all_peers if round_no % 2 else list(reversed(all_peers))
            for peer in order:
                peer.runs.append(measure(peer, work, args.duration))
    finally:
        for peer in all_peers:
            stop(peer)
    report = table(all_peers)
    stamp = time.strftime("%Y-%m-%dT%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    meta = {
        "when": stamp,
        "cpus": os.cpu_count(),
        "duration_s": args.duration,
        "rounds": args.rounds,
        "command": "python bench/serving/run.py " + " ".join(sys.argv[1:]),
        "peers": {p.name: p.runs for p in all_peers},
    }
    (RESULTS / f"{stamp}.json").write_text(json.dumps(meta, indent=2) + "\n")
    (RESULTS / f"{stamp}.md").write_text(
        f"# Serving benchmark {stamp}\n\n`{meta['command']}`, "
        f"{meta['cpus']} CPUs, {args.rounds} rounds of {args.duration} s\n\n"
        f"{report}\n"
    )
    print(report)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
