"""Registry schema migrations on SQLite: a registry written before migrations upgrades and reads back,
`legion-ci db current|upgrade`, the migrations equal the tables the code queries, newer schemas refused."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from legion_ci.cli import main
from legion_ci.core import registry_schema
from legion_ci.core.errors import RegistryError
from legion_ci.core.registry import Registry, metadata, open_engine
from tests.registry_fixture import assert_reads_back, restore_sqlite


def schema_differences(url: str) -> list[object]:
    engine = open_engine(url)
    with engine.connect() as conn:
        found = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    return list(found)


def revision(url: str) -> str | None:
    engine = open_engine(url)
    with engine.connect() as conn:
        found = registry_schema.state(conn).revision
    engine.dispose()
    return found


def test_a_registry_written_before_migrations_upgrades_itself_and_reads_back(tmp_path: Path) -> None:
    url = restore_sqlite(tmp_path / "registry.db")
    assert revision(url) is None
    reg = Registry(url)  # SQLite: opening upgrades
    assert revision(url) == registry_schema.HEAD
    assert_reads_back(reg)
    reg.close()
    assert schema_differences(url) == []


def test_db_current_and_upgrade(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = restore_sqlite(tmp_path / "registry.db")
    assert main(["db", "current", "--registry-url", url]) == 0
    assert "written before legion-ci had migrations" in capsys.readouterr().out
    assert revision(url) is None  # looking changes nothing
    assert main(["db", "upgrade", "--registry-url", url]) == 0
    assert (
        f"upgraded from schema revision none (written before legion-ci had migrations) to {registry_schema.HEAD}"
        in (capsys.readouterr().out)
    )
    assert main(["db", "upgrade", "--registry-url", url]) == 0
    assert "already at schema revision" in capsys.readouterr().out
    assert main(["db", "current", "--registry-url", url]) == 0
    assert f"schema revision {registry_schema.HEAD} (current)" in capsys.readouterr().out


def test_a_fresh_registry_gets_exactly_the_schema_the_code_queries(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    Registry(url).close()
    assert revision(url) == registry_schema.HEAD
    assert schema_differences(url) == []


def test_head_is_the_newest_migration_script() -> None:
    assert registry_schema.known_revisions()[-1] == registry_schema.HEAD
    assert registry_schema.known_revisions()[0] == registry_schema.BASELINE


def test_a_registry_from_a_newer_legion_ci_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    reg = Registry(url)
    with reg.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    reg.close()
    with pytest.raises(
        RegistryError, match="schema revision 0999, which this legion-ci does not know.*upgrade legion-ci"
    ):
        Registry(url)
    assert main(["db", "upgrade", "--registry-url", url]) == 2
    assert "upgrade legion-ci" in capsys.readouterr().err
    assert main(["db", "current", "--registry-url", url]) == 0
    assert "newer than this legion-ci knows" in capsys.readouterr().out


OPENER = textwrap.dedent("""
    import sys
    from legion_ci.core.registry import Registry
    reg = Registry(sys.argv[1])
    reg.ensure_run(f"run-{sys.argv[2]}", "m", "/d", "push")
""")


def test_processes_opening_a_fresh_registry_at_once_migrate_it_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    procs = [
        subprocess.Popen([sys.executable, "-c", OPENER, url, str(w)], stderr=subprocess.PIPE, text=True)
        for w in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert revision(url) == registry_schema.HEAD
    assert sorted(r.id for r in Registry(url).runs()) == [f"run-{w}" for w in range(4)]


def test_rows_registered_before_manifest_digests_still_read_and_new_ones_record_it(tmp_path: Path) -> None:
    from tests.manifests import stub_manifest

    url = restore_sqlite(tmp_path / "registry.db")
    reg = Registry(url)  # 0001 -> 0002 -> 0003: versions.manifest_digest added, NULL on the old rows
    old = reg.versions("iris")
    assert old and all(v.manifest_digest is None for v in old)
    digest = "sha256:" + "b" * 64
    new, created = reg.register_version(stub_manifest("iris", "9.9.9", "fedcba9876543210"), "s3://b/p/x", digest)
    assert created and new.manifest_digest == digest
    assert reg.version_by_id(new.id).manifest_digest == digest
    reg.close()
