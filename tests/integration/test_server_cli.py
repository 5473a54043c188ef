"""`legion-ci token create` and `legion-ci serve` refusals, as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import jwt

from .conftest import ROOT


def run(*args: str, home: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("LEGION_")}
    full.update({"LEGION_HOME": str(home), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "legion_ci", *args], capture_output=True, text=True, env=full, cwd=ROOT, timeout=120
    )


def test_token_create_prints_only_a_scoped_token(tmp_path: Path) -> None:
    done = run("token", "create", "--model", "iris", "--version", "1.0.0", "--ttl", "30m", home=tmp_path)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert "\n" not in token and done.stderr == ""
    key = tmp_path / "secrets" / "jwt-hs256.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    secret = key.read_text().strip()
    assert secret not in done.stdout
    claims = jwt.decode(token, secret, algorithms=["HS256"], audience="legion-ci")
    assert claims["models"] == ["iris:1.0.0"] and claims["exp"] - claims["iat"] == 1800
    env_secret = run(
        "token",
        "create",
        "--model",
        "iris",
        home=tmp_path,
        env={"LEGION_JWT_SECRET": "from-the-environment-0123456789abcdef"},
    )
    jwt.decode(
        env_secret.stdout.strip(), "from-the-environment-0123456789abcdef", algorithms=["HS256"], audience="legion-ci"
    )


def test_token_create_refusals(tmp_path: Path) -> None:
    too_long = run("token", "create", "--model", "iris", "--ttl", "30d", home=tmp_path)
    assert too_long.returncode == 2 and "--ttl: 30d is longer than the servers accept" in too_long.stderr
    bad = run("token", "create", "--model", "iris", "--ttl", "soon", home=tmp_path)
    assert bad.returncode == 2 and "--ttl: 'soon' is not a duration" in bad.stderr
    assert too_long.stdout == "" and bad.stdout == ""


def test_serve_refuses_bad_artifacts_before_binding(iris_artifact: Path, tmp_path: Path) -> None:
    empty = run("serve", str(tmp_path), "--port", "0", home=tmp_path)
    assert empty.returncode == 2 and "not an artifact (no manifest.json)" in empty.stderr
    tampered = tmp_path / "tampered"
    shutil.copytree(iris_artifact, tampered)
    model = tampered / json.loads((tampered / "manifest.json").read_text())["model"]["file"]
    model.write_bytes(model.read_bytes() + b"x")
    refused = run("serve", str(tampered), "--port", "0", home=tmp_path)
    assert refused.returncode == 2 and "does not match the manifest" in refused.stderr
    assert "listening on" not in refused.stdout
    rate = run("serve", str(iris_artifact), "--capture-rate", "2", home=tmp_path)
    assert rate.returncode == 2 and "invalid rate '2'" in rate.stderr


def _loaded_modules(server_pid: int) -> str:
    """The shared libraries a running server has mapped (scikit-learn's compiled parts show up here)."""
    return Path(f"/proc/{server_pid}/maps").read_text()


def test_a_second_server_of_an_artifact_starts_slim_from_the_plan_cache(iris_artifact: Path, tmp_path: Path) -> None:
    """The first server verifies the plain-numpy plan against scikit-learn and caches it; the next one
    serves the same answers without importing scikit-learn at all. A damaged cache entry is rebuilt."""
    from .conftest import start_server

    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
    answers = []
    for attempt in ("cold", "cached", "damaged"):
        if attempt == "damaged":
            next((tmp_path / "cache" / "plans").glob("plan-*.npz")).write_bytes(b"not a plan")
        server = start_server(iris_artifact, tmp_path, "--no-auth")
        try:
            plans = list((tmp_path / "cache" / "plans").glob("plan-*.npz"))
            assert len(plans) == 1, plans
            if attempt == "cached":
                assert "sklearn" not in _loaded_modules(server.proc.pid)
            answer = httpx.post(f"{server.url}/api/model/iris/1.0.0/invoke", json={"instances": rows}, timeout=30)
            assert answer.status_code == 200, answer.text
            answers.append(answer.json()["predictions"])
        finally:
            server.stop()
    assert answers[0] == answers[1] == answers[2]
    assert "cannot read" in " ".join(server.lines)
