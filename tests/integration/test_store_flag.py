"""`--store URL` on the command line does what LEGION_STORE_URL does, for that invocation only (over the
variable); a URL with an unknown scheme or no bucket is refused with exit 2 before anything runs."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from legion_ci.core.store import RunOutputs, Store
from tests.integration.test_runs_cli import cli, record_run
from tests.s3 import BUCKET, S3Server


def test_store_flag_reads_the_s3_store_as_the_variable_does(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    url = f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}"
    home = tmp_path / "home"
    record_run(home, "r1", url)
    report = tmp_path / "report.html"
    report.write_text("<html></html>")
    RunOutputs(Store(url, home)).keep("r1", "gate", [report])

    by_env = cli(home, "runs", "show", "r1", extra={**s3_server.env, "LEGION_STORE_URL": url})
    by_flag = cli(home, "runs", "show", "r1", "--store", url, extra=s3_server.env)
    assert by_env.returncode == 0 and by_flag.returncode == 0, by_env.stderr + by_flag.stderr
    assert f"      {url}/runs/r1/gate/report.html" in by_flag.stdout.splitlines()
    assert by_flag.stdout == by_env.stdout

    # the flag wins over the variable: an empty prefix in the environment, the real one on the line
    other = f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}"
    over = cli(home, "runs", "show", "r1", "--store", url, extra={**s3_server.env, "LEGION_STORE_URL": other})
    assert over.stdout == by_env.stdout
    empty = cli(home, "runs", "show", "r1", extra={**s3_server.env, "LEGION_STORE_URL": other})
    assert f"  store {other}/runs/r1" in empty.stdout.splitlines() and "report.html" not in empty.stdout


@pytest.mark.parametrize(
    ("argv", "url", "why"),
    [
        (["runs", "show", "r1"], "nosuch://bucket/legion", "unknown scheme 'nosuch'"),
        (["gc", "--dry-run"], "s3://", "no bucket after s3://"),
        (["train", "examples/iris", "--run-id", "r2"], "s3:///legion", "no bucket after s3://"),
        (["feedback", "export", "iris"], "nosuch://b", "unknown scheme 'nosuch'"),
    ],
)
def test_a_bad_store_url_is_exit_2_naming_the_flag(tmp_path: Path, argv: list[str], url: str, why: str) -> None:
    home = tmp_path / "home"
    done = cli(home, *argv, "--store", url)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == (
        f"error: --store={url!r} is not valid (expected a folder path or a URL such as s3://BUCKET/PREFIX; {why})\n"
    )
    assert not (home / "runs" / "r2").exists()


def test_a_bad_store_variable_names_the_variable(tmp_path: Path) -> None:
    done = cli(tmp_path / "home", "runs", "show", "r1", extra={"LEGION_STORE_URL": "s3:///x"})
    assert done.returncode == 2
    assert "error: LEGION_STORE_URL='s3:///x' is not valid" in done.stderr and "no bucket after s3://" in done.stderr
