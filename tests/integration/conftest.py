"""Model-server fixtures: a small iris artifact built directly, and real `legion-ci serve` processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.processes import launch

ROOT = Path(__file__).resolve().parents[2]
JWT_SECRET = "test-secret-0123456789abcdef0123456789abcdef"


def build_iris_artifact(folder: Path, name: str = "iris", version: str = "1.0.0", model: Any = None) -> Path:
    """An artifact folder the way the train stage writes one: model file plus manifest.json."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from legion_ci.core.artifact import save_model, write_json_atomic
    from legion_ci.core.manifest import DataLineage, ExportedModel, Feature, GitInfo, InputSchema, Manifest

    frame = load_iris(as_frame=True).frame
    x, y = frame.drop(columns=["target"]), frame["target"]
    model = (model or LogisticRegression(max_iter=500)).fit(x, y)
    folder.mkdir(parents=True, exist_ok=True)
    info = save_model(model, folder)
    example = x.iloc[[0, 50, 100, 1, 51]]
    exported = ExportedModel(
        **info.model_dump(),
        task="classification",
        classes=[int(c) for c in model.classes_],
        estimator=f"{type(model).__module__}.{type(model).__name__}",
        input_schema=InputSchema(
            features=[Feature(name=str(c), dtype="float64") for c in x.columns],
            example=example.to_numpy().tolist(),
            example_predictions=[int(p) for p in model.predict(example)],
        ),
        target="target",
    )
    manifest = Manifest(
        name=name,
        version=version,
        artifact_id="0123456789abcdef",
        git=GitInfo(commit="abc123", branch="main", dirty=False),
        data=DataLineage(fingerprint="f" * 64),
        metrics={"accuracy": 0.97},
        params={"max_iter": 500},
        model=exported,
    )
    write_json_atomic(folder / "manifest.json", manifest.to_json())
    return folder


@pytest.fixture(scope="session")
def iris_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_iris_artifact(tmp_path_factory.mktemp("artifacts") / "iris")


@dataclass
class Server:
    """A `python -m legion_ci serve` process on a free port (the server picks it: --port 0)."""

    proc: subprocess.Popen[str]
    url: str
    home: Path
    lines: list[str] = field(default_factory=list)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return int(self.proc.returncode)


def start_server(
    artifact: Path, home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60.0
) -> Server:
    """Start a server and wait for its `listening on` line; fail with its output if it exits first."""
    full_env = {**os.environ, "LEGION_HOME": str(home), "PYTHONUNBUFFERED": "1", **(env or {})}
    for key in ("LEGION_AUTH", "LEGION_JWKS", "LEGION_JWT_ISSUER", "LEGION_JWT_REVOKED", "LEGION_JWT_MAX_TTL"):
        if env is None or key not in env:
            full_env.pop(key, None)
    proc, url, seen = launch(["serve", str(artifact), "--port", "0", *args], full_env, "server", timeout)
    return Server(proc, url, home, seen)


@pytest.fixture(scope="session")
def jwt_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An RSA and an EC key pair, a JWKS file with their public halves, and an empty revocation list."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    folder = tmp_path_factory.mktemp("jwt")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    keys = []
    for kid, key, alg in (("rsa-1", rsa_key, "RS256"), ("ec-1", ec_key, "ES256")):
        jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
        jwk.update({"kid": kid, "use": "sig", "alg": alg})
        keys.append(jwk)
    jwks = folder / "jwks.json"
    jwks.write_text(json.dumps({"keys": keys}))
    revoked = folder / "revoked.txt"
    revoked.write_text("# revoked token ids\n")
    return {"jwks": jwks, "revoked": revoked, "rsa": rsa_key, "ec": ec_key, "jwks_data": {"keys": keys}}


@pytest.fixture(scope="session")
def auth_env(jwt_files: dict[str, Any]) -> dict[str, str]:
    return {
        "LEGION_JWT_SECRET": JWT_SECRET,
        "LEGION_JWKS": str(jwt_files["jwks"]),
        "LEGION_JWT_REVOKED": str(jwt_files["revoked"]),
        "LEGION_JWT_MAX_TTL": "2h",
        "LEGION_JWT_ISSUER": "https://issuer.test",
    }


@pytest.fixture(scope="session")
def server(iris_artifact: Path, tmp_path_factory: pytest.TempPathFactory, auth_env: dict[str, str]) -> Iterator[Server]:
    """The iris server with auth on (HS256 secret, JWKS file, issuer, revocation list, 2h max TTL)."""
    srv = start_server(iris_artifact, tmp_path_factory.mktemp("home"), env=auth_env)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def open_server(iris_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The iris server with --no-auth and small limits, for validation tests."""
    srv = start_server(
        iris_artifact, tmp_path_factory.mktemp("home"), "--no-auth", "--max-rows", "50", "--max-body-bytes", "4096"
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def token() -> str:
    from legion_ci.auth.jwt import create_token

    return create_token(JWT_SECRET, "iris", "1.0.0", ttl_seconds=3600, issuer="https://issuer.test")


@pytest.fixture(scope="session")
def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
