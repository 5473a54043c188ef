"""The registry: idempotent registration, aliases, runs, locks, and concurrent writers in real processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from legion_ci.core.errors import LockedError, NotFoundError, RegistryError
from legion_ci.core.locking import model_lock
from legion_ci.core.manifest import Manifest, ManifestError
from legion_ci.core.registry import Registry, versions
from legion_ci.core.status import StageStatus
from tests.manifests import stub_manifest


def manifest(aid: str, version: str = "1.0.0", name: str = "m") -> Manifest:
    return stub_manifest(name, version, aid)


def test_registering_the_same_artifact_twice_creates_one_version(registry: Registry) -> None:
    first, created = registry.register_version(manifest("a1"), "/p")
    again, created_again = registry.register_version(manifest("a1"), "/p")
    assert created and not created_again
    assert first.id == again.id
    assert len(registry.versions("m")) == 1


def test_resolve_by_alias_version_and_artifact_prefix(registry: Registry) -> None:
    v1, _ = registry.register_version(manifest("aaaa1111"), "/1")
    v2, _ = registry.register_version(manifest("bbbb2222", "2.0.0"), "/2")
    registry.set_alias("m", "production", v1.id)
    assert registry.resolve("m", "production").id == v1.id
    assert registry.resolve("m", "2.0.0").id == v2.id
    assert registry.resolve("m", "bbbb").id == v2.id
    with pytest.raises(NotFoundError, match="versions: 1.0.0, 2.0.0"):
        registry.resolve("m", "3.0.0")


def test_one_version_string_names_one_artifact(registry: Registry) -> None:
    registry.register_version(manifest("a1"), "/1")
    with pytest.raises(RegistryError, match="version '1.0.0' is already registered for artifact a1, so artifact a2"):
        registry.register_version(manifest("a2"), "/2")
    assert [v.artifact_id for v in registry.versions("m")] == ["a1"]
    assert registry.free_version("m", "1.0.0") == "1.0.1"
    assert registry.free_version("m", "2.0.0") == "2.0.0"
    registry.register_version(manifest("a2", "1.0.1"), "/2")
    registry.register_version(manifest("a3", "1.0.0-rc1"), "/3")
    assert registry.free_version("m", "1.0.0") == "1.0.2"
    assert registry.free_version("m", "1.0.0-rc1") == "1.0.1-rc1"
    assert registry.free_version("other", "1.0.0") == "1.0.0"


def test_set_alias_returns_the_previous_version(registry: Registry) -> None:
    v1, _ = registry.register_version(manifest("a1"), "/1")
    v2, _ = registry.register_version(manifest("a2", "1.1.0"), "/2")
    assert registry.set_alias("m", "production", v1.id) is None
    assert registry.set_alias("m", "production", v2.id) == v1.id
    assert registry.aliases_of("m") == {"production": v2.id}


def test_stage_results_count_attempts(registry: Registry) -> None:
    registry.ensure_run("r1", "m", "/d", "push")
    for _ in range(2):
        registry.record_stage("r1", "train", StageStatus.RUNNING)
        registry.record_stage("r1", "train", StageStatus.PASSED, "ok", {"version_id": 1})
    record = registry.stages("r1")["train"]
    assert record.attempts == 2 and record.outputs == {"version_id": 1} and record.status == "passed"


def test_a_run_id_belongs_to_one_model(registry: Registry) -> None:
    registry.ensure_run("r1", "m", "/d", "push")
    with pytest.raises(RegistryError, match="belongs to model 'm'"):
        registry.ensure_run("r1", "other", "/d", "push")


def test_unknown_run(registry: Registry) -> None:
    with pytest.raises(NotFoundError, match="no run 'nope'"):
        registry.run("nope")


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot open registry"):
        Registry("postgresql+psycopg://user:secret@127.0.0.1:1/db")


def test_password_never_shown(tmp_path: Path) -> None:
    with pytest.raises(RegistryError) as info:
        Registry("postgresql+psycopg://user:s3cr3t@127.0.0.1:1/db")
    assert "s3cr3t" not in str(info.value)


def test_lock_refuses_a_second_owner_and_is_reentrant(registry: Registry) -> None:
    with model_lock(registry, "m", owner="run-a"):
        with model_lock(registry, "m", owner="run-a"):
            pass
        with pytest.raises(LockedError, match="locked by run 'run-a'"):
            with model_lock(registry, "m", owner="run-b"):
                pass
    with model_lock(registry, "m", owner="run-b"):
        pass


def test_stale_lock_of_a_dead_process_is_cleared(registry: Registry) -> None:
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    registry.try_lock("model:m", "crashed-run", socket.gethostname(), int(dead.stdout))
    with model_lock(registry, "m", owner="run-new"):
        holder = registry.try_lock("model:m", "x", "h", 1)
        assert holder is not None and holder["owner"] == "run-new"


WRITER = textwrap.dedent("""
    import sys
    from legion_ci.core.registry import Registry
    from legion_ci.core.status import StageStatus
    from tests.manifests import stub_manifest
    reg = Registry(sys.argv[1])
    who = sys.argv[2]
    reg.ensure_run(f"run-{who}", "m", "/d", "push")
    for i in range(int(sys.argv[3])):
        reg.register_version(stub_manifest("m", f"1.0.{i}-{who}", f"{who}-{i}"), "/p")
        reg.register_version(stub_manifest("m", f"2.0.{i}", f"shared-{i}"), "/p")
        reg.record_stage(f"run-{who}", f"stage-{i}", StageStatus.PASSED, outputs={"i": i})
""")


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    """Four processes write at once: every write lands, shared artifacts register once, no corruption."""
    db = tmp_path / "registry.db"
    url = f"sqlite:///{db}"
    Registry(url).close()
    n = 40
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, str(w), str(n)], stderr=subprocess.PIPE, text=True)
        for w in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    reg = Registry(url)
    ids = [v.artifact_id for v in reg.versions("m")]
    assert len(ids) == len(set(ids)) == 4 * n + n
    for w in range(4):
        assert len(reg.stages(f"run-{w}")) == n
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_malformed_stored_manifest_names_the_version_and_the_field(registry: Registry) -> None:
    version, _ = registry.register_version(manifest("a1"), "/p")
    broken = {**manifest("a1").to_json(), "metrics": {"accuracy": "high"}}
    with registry.engine.begin() as conn:
        conn.execute(versions.update().where(versions.c.id == version.id).values(manifest=broken))
    with pytest.raises(
        ManifestError, match=rf"registry version {version.id} \(m 1.0.0\): invalid manifest\n.*'metrics.accuracy'"
    ):
        registry.versions("m")


def test_events_keep_decisions_with_their_evidence_in_order(registry: Registry) -> None:
    v, _ = registry.register_version(manifest("a1"), "/p")
    registry.add_event("m", "rollout", "keep-testing", "too few rows", {"labelled": {"1.0.0": 3}}, v.id)
    registry.add_event("m", "rollout", "rollback", "worse", {"interval": [-0.5, -0.3]}, v.id, run_id="r1")
    registry.add_event("other", "rollout", "promote", "better")
    found = registry.events("m")
    assert [e.action for e in found] == ["keep-testing", "rollback"]
    assert found[1].detail == {"interval": [-0.5, -0.3]} and found[1].run_id == "r1" and found[1].version_id == v.id
    assert [e.action for e in registry.events("m", limit=1)] == ["rollback"]
