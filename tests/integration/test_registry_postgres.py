"""The registry on a real PostgreSQL server (a throwaway cluster started for this module)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from legion_ci.core.processes import free_port
from legion_ci.core.registry import Registry
from tests.manifests import stub_manifest


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries missing: scripts/provision/postgres.sh should install them")
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    bin_dir = Path(bins[-1])
    root = Path(tempfile.mkdtemp(prefix="legion-pg-"))  # outside pytest's root-only tmp tree
    data = root / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(data, "postgres")
    port = free_port()
    subprocess.run(
        _as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "legion"]),
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        _as_postgres(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", opts, "-w", "-l", str(data / "server.log"), "start"]
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://legion@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]), capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


def test_registry_works_on_postgres(pg_url: str) -> None:
    reg = Registry(pg_url)
    v1, created = reg.register_version(stub_manifest("pg", "1.0.0", "p1"), "/p")
    _, again = reg.register_version(stub_manifest("pg", "1.0.0", "p1"), "/p")
    assert created and not again
    reg.set_alias("pg", "production", v1.id)
    assert reg.resolve("pg", "production").artifact_id == "p1"
    reg.ensure_run("pg-run", "pg", "/d", "push")
    reg.record_stage("pg-run", "train", "passed", outputs={"version_id": v1.id})
    assert reg.stages("pg-run")["train"].outputs == {"version_id": v1.id}
    reg.close()


WRITER = textwrap.dedent("""
    import sys
    from legion_ci.core.registry import Registry
    from tests.manifests import stub_manifest
    reg = Registry(sys.argv[1])
    for i in range(25):
        reg.register_version(stub_manifest("cc", "1.0.0", f"{sys.argv[2]}-{i}"), "/p")
        reg.register_version(stub_manifest("cc", "1.0.0", f"shared-{i}"), "/p")
""")


def test_concurrent_writers_on_postgres(pg_url: str) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, pg_url, str(w)], stderr=subprocess.PIPE, text=True)
        for w in range(3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    ids = [v.artifact_id for v in Registry(pg_url).versions("cc")]
    assert len(ids) == len(set(ids)) == 3 * 25 + 25
