"""A stand-in S3 server for the tests: moto's standalone server (`moto_server`, PyPI moto[server]) as a real
process on 127.0.0.1, one per test session, reached through the standard AWS variables (AWS_ENDPOINT_URL)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

BUCKET = "legion-test"


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to reach the server: only the standard AWS variables."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto(port: int, log: Path, bucket: str | None = BUCKET) -> tuple[subprocess.Popen[bytes], S3Server]:
    """moto_server on 127.0.0.1:`port`, answering, with `bucket` created; stop it with `stop_moto`."""
    binary = Path(sys.executable).parent / "moto_server"
    with log.open("a") as out:
        proc = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT, env=os.environ
        )
    server = S3Server(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                httpx.get(f"{server.endpoint}/moto-api/", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not answer on {server.endpoint}:\n{log.read_text()}") from None
                time.sleep(0.2)
        if bucket:
            server.client().create_bucket(Bucket=bucket)
    except BaseException:
        stop_moto(proc)
        raise
    return proc, server


def stop_moto(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto_server started for the session and stopped by its PID at the end; the bucket BUCKET exists."""
    proc, server = start_moto(free_port(), tmp_path_factory.mktemp("s3") / "moto.log")
    try:
        yield server
    finally:
        stop_moto(proc)
