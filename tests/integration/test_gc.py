"""`legion-ci gc` on a local store and on S3 (the stand-in server): a dry run removes nothing, --keep N keeps
the newest N, production, a live deployment and a running pipeline's candidate are never removed, and what
goes is gone from the registry and the store together (S3 objects included, a neighbour's prefix not)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from legion_ci.core.errors import RegistryError
from legion_ci.core.registry import Registry, runs
from legion_ci.core.retention import collect
from legion_ci.core.settings import Settings, load_settings
from legion_ci.core.status import DeploymentStatus, RunStatus, StageStatus
from legion_ci.core.store import RunOutputs, Store
from tests.manifests import stub_manifest
from tests.s3 import BUCKET, S3Server


@pytest.fixture(params=["local", "s3"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings of a private home whose store is the home itself ("local") or a fresh S3 prefix ("s3")."""
    monkeypatch.delenv("LEGION_REGISTRY_URL", raising=False)
    monkeypatch.delenv("LEGION_STORE_URL", raising=False)
    if request.param == "local":
        return load_settings(str(tmp_path / "home"))
    s3: S3Server = request.getfixturevalue("s3_server")
    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    return load_settings(str(tmp_path / "home"), store_url=f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}")


@pytest.fixture
def registry(store_settings: Settings) -> Iterator[Registry]:
    reg = Registry.from_settings(store_settings)
    yield reg
    reg.close()


def _put(store: Store, uri: str, name: str, text: str) -> None:
    """One object in the store at uri/name (an S3 object, or a local file)."""
    if store.remote:
        import fsspec

        with fsspec.open(f"{uri}/{name}", "w") as fh:
            fh.write(text)
    else:
        path = Path(uri) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


class World:
    """Model m with six versions (v1 production, v2 deployed, v3 once deployed and stopped, v4 the candidate
    of a running run, v5 and v6 the newest), each with two objects in the store, and four runs with a report
    each: r-fail (trained nothing), r-v3, r-running (v4), r-v30 (v6, the newest)."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        self.settings, self.registry = settings, registry
        self.store = Store.from_settings(settings)
        self.outputs = RunOutputs(self.store)
        self.ids: dict[str, int] = {}
        self.uris: dict[str, str] = {}
        for i in range(1, 7):
            aid = f"{i:016x}"
            uri = self.store.artifact_uri("m", aid)
            _put(self.store, uri, "manifest.json", "{}")
            _put(self.store, uri, "model.skops", "model")
            version, _ = registry.register_version(stub_manifest("m", f"1.0.{i}", aid), uri)
            self.ids[f"v{i}"], self.uris[f"v{i}"] = version.id, uri
        registry.set_alias("m", "production", self.ids["v1"])
        registry.add_deployment("m", self.ids["v2"], "local", 100, [], {"version": "1.0.2"})
        stopped = registry.add_deployment("m", self.ids["v3"], "local", 0, [], {"version": "1.0.3"})
        registry.update_deployment(stopped.id, status=DeploymentStatus.STOPPED)
        registry.add_event("m", "rollout", "rollback", "rolled 1.0.3 back", version_id=self.ids["v3"])
        for n, (run_id, trained, status) in enumerate(
            [
                ("r-fail", None, RunStatus.FAILED),
                ("r-v3", "v3", RunStatus.PASSED),
                ("r-running", "v4", RunStatus.RUNNING),
                ("r-v30", "v6", RunStatus.PASSED),
            ]
        ):
            registry.ensure_run(run_id, "m", "/models/m", "push")
            with registry.tx() as conn:  # a clear order of creation, whatever the clock's resolution
                conn.execute(runs.update().where(runs.c.id == run_id).values(created_at=f"2026-01-0{n + 1}T00:00:00"))
            registry.set_run_status(run_id, status)
            if trained is None:
                registry.record_stage(run_id, "train", StageStatus.ERROR, "train.py failed")
            else:
                registry.record_stage(run_id, "train", StageStatus.PASSED, "", {"version_id": self.ids[trained]})
            _put(self.store, self.outputs.uri(run_id, "gate"), "report.html", "<html></html>")

    def versions(self) -> set[str]:
        alive = {v.id for v in self.registry.versions("m")}
        return {name for name, vid in self.ids.items() if vid in alive}

    def runs(self) -> set[str]:
        return {r.id for r in self.registry.runs("m", limit=None)}

    def objects(self) -> dict[str, int]:
        """How many files the store holds under each version's and each run's folder (one listing)."""
        if self.store.remote:
            import fsspec

            fs, root = fsspec.core.url_to_fs(self.store.url, skip_instance_cache=True)
            found = [f"s3://{p}" for p in fs.find(root)]
        else:
            found = [str(p) for p in Path(self.store.url).rglob("*") if p.is_file()]
        folders = {**self.uris, **{r: self.outputs.uri(r) for r in ("r-fail", "r-v3", "r-running", "r-v30")}}
        return {name: sum(1 for f in found if f.startswith(uri + "/")) for name, uri in folders.items()}


@pytest.fixture
def world(store_settings: Settings, registry: Registry) -> World:
    return World(store_settings, registry)


def test_a_dry_run_lists_what_would_go_and_removes_nothing(world: World) -> None:
    before = world.objects()
    lines: list[str] = []
    outcome = collect(world.settings, world.registry, 2, True, lines.append)
    assert sorted((r.kind, r.name) for r in outcome.removed) == [
        ("artifact", "m 1.0.3 (00000000)"),
        ("run", "r-fail"),
        ("run", "r-v3"),
    ]
    assert [r.objects for r in outcome.removed] == [2, 1, 1]
    assert any(line.startswith(f"would remove artifact m 1.0.3 (00000000): {world.uris['v3']}") for line in lines)
    assert world.versions() == {"v1", "v2", "v3", "v4", "v5", "v6"}
    assert world.runs() == {"r-fail", "r-v3", "r-running", "r-v30"}
    assert world.objects() == before


def test_gc_keeps_the_newest_n_and_removes_the_rest_from_registry_and_store(world: World) -> None:
    lines: list[str] = []
    outcome = collect(world.settings, world.registry, 2, False, lines.append)
    assert not outcome.problems
    assert world.versions() == {"v1", "v2", "v4", "v5", "v6"}
    assert world.runs() == {"r-running", "r-v30"}
    objects = world.objects()
    assert objects["v3"] == 0 and objects["r-v3"] == 0 and objects["r-fail"] == 0
    assert objects["r-v30"] == 1  # a run whose id starts like a removed one's keeps its outputs
    assert all(objects[v] == 2 for v in ("v1", "v2", "v4", "v5", "v6"))
    assert [d.version_id for d in world.registry.deployments("m", active_only=False)] == [world.ids["v2"]]
    [event] = world.registry.events("m")
    assert event.summary == "rolled 1.0.3 back" and event.version_id is None  # history stays, unlinked
    assert f"removed artifact m 1.0.3 (00000000): {world.uris['v3']} (2 object(s))" in lines
    again = collect(world.settings, world.registry, 2, False, lines.append)
    assert again.removed == []  # a second gc finds nothing more


def test_production_a_live_deployment_and_a_running_candidate_survive_keep_zero(world: World) -> None:
    outcome = collect(world.settings, world.registry, 0, False, lambda _: None)
    assert not outcome.problems
    assert world.versions() == {"v1", "v2", "v4"}
    production = world.registry.alias("m", "production")
    assert production is not None and production.id == world.ids["v1"]
    assert world.objects()["v1"] == 2 and world.objects()["v2"] == 2
    kept = {k["version_id"]: k["reasons"] for k in outcome.kept}
    assert kept[world.ids["v1"]] == ["production"]
    assert kept[world.ids["v2"]][0].startswith("deployed (deployment 1")
    assert kept[world.ids["v4"]] == ["candidate of run r-running, still running"]
    assert world.runs() == {"r-running"}


def test_the_registry_refuses_to_remove_an_aliased_or_deployed_version(world: World) -> None:
    with pytest.raises(RegistryError, match=r"m 1.0.1 \(00000000\) is production; not removed"):
        world.registry.remove_version(world.ids["v1"])
    with pytest.raises(RegistryError, match=r"m 1.0.2 \(00000000\) is deployed \(deployment 1\); not removed"):
        world.registry.remove_version(world.ids["v2"])


def test_a_row_naming_a_foreign_path_loses_its_row_but_not_the_files(
    store_settings: Settings, registry: Registry, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "not-the-store"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("keep me")
    registry.register_version(stub_manifest("m", "0.1.0", "aaaa"), str(elsewhere))
    registry.register_version(stub_manifest("m", "0.2.0", "bbbb"), "/nowhere/m/bbbb")
    lines: list[str] = []
    outcome = collect(store_settings, registry, 1, False, lines.append)
    assert [r.name for r in outcome.removed] == ["m 0.1.0 (aaaa)"]
    assert (elsewhere / "precious.txt").read_text() == "keep me"
    assert "its path does not end in m/aaaa, so the files were left" in lines[0]


def test_a_negative_keep_is_refused(store_settings: Settings, registry: Registry) -> None:
    from legion_ci.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"--keep -1: expected the number of newest versions to keep"):
        collect(store_settings, registry, -1, True, lambda _: None)


def test_the_cli_prints_each_removal_and_a_total(world: World) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEGION_")}
    env["LEGION_HOME"] = str(world.settings.home)
    if world.settings.store_url:
        env["LEGION_STORE_URL"] = world.settings.store_url
    command = [sys.executable, "-m", "legion_ci", "gc", "--keep", "2"]
    dry = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, env=env, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "would remove run r-v3: " in dry.stdout and "dry run: nothing was removed" in dry.stdout
    assert "kept m 1.0.1 (00000000): production\n" in dry.stdout
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "gc removed 1 artifact(s) and 2 run(s), 4 object(s) in the store" in done.stdout
    assert world.versions() == {"v1", "v2", "v4", "v5", "v6"}
    bad = subprocess.run([*command[:-2], "--keep", "-3"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "--keep -3: expected" in bad.stderr


def test_a_model_whose_pipeline_holds_its_lock_is_skipped_and_said_so(world: World) -> None:
    from legion_ci.core.locking import model_lock

    with model_lock(world.registry, "m", owner="r-running"):
        outcome = collect(world.settings, world.registry, 2, False, lambda _: None)
    assert outcome.removed == []
    assert len(outcome.problems) == 1 and outcome.problems[0].startswith("m: skipped, model 'm' is locked by run")
    assert world.versions() == {"v1", "v2", "v3", "v4", "v5", "v6"}


def test_a_version_that_gains_an_alias_meanwhile_keeps_its_runs(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan is made, then (before the removal) v3 becomes staging: the registry refuses to remove it, and
    the run that trained it keeps its registry rows and its outputs."""
    from legion_ci.core import retention

    planned = retention.plan_model

    def plan_then_alias(registry: Registry, model: str, keep: int) -> retention.ModelPlan:
        plan = planned(registry, model, keep)
        registry.set_alias(model, "staging", world.ids["v3"])  # what another process did meanwhile
        return plan

    monkeypatch.setattr(retention, "plan_model", plan_then_alias)
    lines: list[str] = []
    outcome = collect(world.settings, world.registry, 2, False, lines.append)
    assert [p for p in outcome.problems if p.startswith("m 1.0.3")], outcome.problems
    assert "v3" in world.versions()
    assert "r-v3" in world.runs() and world.objects()["r-v3"] == 1
    assert "r-fail" not in world.runs()  # a run that trained nothing still goes
    assert "kept run r-v3: its candidate m 1.0.3 (00000000) was kept" in lines
    assert [r.name for r in outcome.removed if r.kind == "run"] == ["r-fail"]
