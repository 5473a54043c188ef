"""The registry on a real PostgreSQL server (a throwaway cluster started for this module): reads, writes,
concurrent writers, and the schema migrations (an empty database, a registry written before migrations)."""

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
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from legion_ci.core import registry_schema
from legion_ci.core.errors import RegistryError
from legion_ci.core.processes import free_port
from legion_ci.core.registry import Registry, metadata
from legion_ci.core.status import StageStatus
from tests.manifests import stub_manifest
from tests.registry_fixture import REGISTRY_V0, assert_reads_back


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
    reg.record_stage("pg-run", "train", StageStatus.PASSED, outputs={"version_id": v1.id})
    assert reg.stages("pg-run")["train"].outputs == {"version_id": v1.id}
    reg.close()


WRITER = textwrap.dedent("""
    import sys
    from legion_ci.core.registry import Registry
    from tests.manifests import stub_manifest
    reg = Registry(sys.argv[1])
    for i in range(25):
        reg.register_version(stub_manifest("cc", f"1.0.{i}-{sys.argv[2]}", f"{sys.argv[2]}-{i}"), "/p")
        reg.register_version(stub_manifest("cc", f"2.0.{i}", f"shared-{i}"), "/p")
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


def _new_database(pg_url: str, name: str) -> str:
    """A fresh database on the test server; returns its URL."""
    engine = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return str(make_url(pg_url).set(database=name).render_as_string(hide_password=False))


def _revision_and_differences(url: str) -> tuple[str | None, list[object]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        revision = registry_schema.state(conn).revision
        differences = list(compare_metadata(MigrationContext.configure(conn), metadata))
    engine.dispose()
    return revision, differences


def test_a_postgres_registry_written_before_migrations_is_refused_then_upgraded(pg_url: str) -> None:
    """The fixture that cecde6b's code wrote on PostgreSQL: a shared registry does not change its own
    schema; `legion-ci db upgrade` does, and everything reads back through the current API."""
    url = _new_database(pg_url, "legacy")
    target = make_url(url)
    psql = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]) / "psql"
    restore = [str(psql), "-q", "-v", "ON_ERROR_STOP=1", "-h", str(target.host), "-p", str(target.port)]
    restore += ["-U", str(target.username), "-d", "legacy", "-f", str(REGISTRY_V0 / "postgresql.sql")]
    subprocess.run(restore, check=True, capture_output=True)
    with pytest.raises(RegistryError, match=r"revision none \(written before .*run `legion-ci db upgrade`"):
        Registry(url)
    assert _revision_and_differences(url)[0] is None  # refusing changed nothing
    done = subprocess.run(
        [sys.executable, "-m", "legion_ci", "db", "upgrade", "--registry-url", url], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (
        f"upgraded from schema revision none (written before legion-ci had migrations) to {registry_schema.HEAD}"
        in (done.stdout)
    )
    assert _revision_and_differences(url) == (registry_schema.HEAD, [])
    reg = Registry(url)
    assert_reads_back(reg)
    reg.close()


def test_an_empty_postgres_database_gets_exactly_the_schema_the_code_queries(pg_url: str) -> None:
    url = _new_database(pg_url, "fresh")
    Registry(url).close()
    assert _revision_and_differences(url) == (registry_schema.HEAD, [])


def test_gc_on_postgres_removes_rows_and_files_together(pg_url: str, tmp_path: Path) -> None:
    """The foreign keys PostgreSQL enforces (deployments, events -> versions) let gc go, and the checks in
    remove_version's transaction still keep production and the live deployment."""
    from legion_ci.core.errors import RegistryError
    from legion_ci.core.retention import collect
    from legion_ci.core.settings import load_settings
    from tests.integration.test_gc import World

    url = _new_database(pg_url, "gc")
    settings = load_settings(str(tmp_path / "home"), registry_url=url)
    reg = Registry(url)
    try:
        world = World(settings, reg)
        with pytest.raises(RegistryError, match=r"is production; not removed"):
            reg.remove_version(world.ids["v1"])
        outcome = collect(settings, reg, 2, False, lambda _: None)
        assert not outcome.problems
        assert world.versions() == {"v1", "v2", "v4", "v5", "v6"}
        assert world.runs() == {"r-running", "r-v30"}
        assert world.objects()["v3"] == 0 and world.objects()["v1"] == 2
        assert [e.version_id for e in reg.events("m")] == [None]
    finally:
        reg.close()
