"""The registry that legion-ci wrote before it had migrations (tests/fixtures/registry-v0), and what
reading it back through today's Registry API must find."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from legion_ci.core.registry import Registry
from legion_ci.core.status import StageStatus
from tests.manifests import stub_manifest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REGISTRY_V0 = FIXTURES / "registry-v0"


def restore_sqlite(db: Path) -> str:
    """The SQLite dump restored into `db`; returns its URL."""
    with sqlite3.connect(db) as conn:
        conn.executescript((REGISTRY_V0 / "sqlite.sql").read_text())
    conn.close()
    return f"sqlite:///{db}"


def assert_reads_back(reg: Registry) -> None:
    """Every model, version (with its version-1 manifest), alias, run, stage, deployment and lock the
    fixture holds, read through the current API; then the registry takes new writes."""
    assert reg.model_names() == ["diabetes", "iris"]
    iris = reg.versions("iris")
    assert [(v.id, v.version, v.artifact_id) for v in iris] == [
        (1, "1.0.0", "629bc30bfe7d424f"),
        (2, "1.1.0", "fd7c53cd165cdf2a"),
    ]
    written = json.loads((FIXTURES / "manifest-v1" / "iris-artifact" / "manifest.json").read_text())
    first = iris[0].manifest
    assert first.model.sha256 == written["model"]["sha256"] and first.data.fingerprint == written["data_fingerprint"]
    assert first.input_schema.names == [f["name"] for f in written["input_schema"]["features"]]
    assert first.metrics == written["metrics"] and first.git.commit == written["git"]["commit"]
    assert iris[0].image == "localhost:5000/legion/iris:1.0.0-629bc30bfe7d"
    assert iris[0].image_digest == "sha256:" + "ab" * 32
    jenkins = iris[1].manifest.jenkins
    assert jenkins is not None and jenkins.build_url == "https://jenkins.example/job/iris/7/"
    assert reg.aliases_of("iris") == {"production": 1, "staging": 2}
    assert reg.resolve("iris", "staging").version == "1.1.0"
    diabetes = reg.alias("diabetes", "production")
    assert diabetes is not None and diabetes.id == 3 and diabetes.manifest.task == "regression"

    runs = {r.id: r for r in reg.runs()}
    assert set(runs) == {"iris-run-1", "iris-run-2", "diabetes-run-1"}
    assert runs["iris-run-1"].status == "passed" and runs["diabetes-run-1"].flow == "retrain"
    stages = reg.stages("iris-run-1")
    assert set(stages) == {"validate", "train", "gate"}
    assert stages["train"].status == "passed" and stages["train"].outputs["artifact_id"] == "629bc30bfe7d424f"
    assert set(reg.stages("diabetes-run-1")) == {"validate", "train"}

    deployments = reg.deployments("iris", active_only=False)
    assert [(d.version_id, d.status, d.weight) for d in deployments] == [(1, "serving", 100), (2, "retired", 0)]
    assert deployments[0].endpoints == [{"url": "http://127.0.0.1:18001", "pid": 4242}]
    assert [d.id for d in reg.deployments("iris")] == [1]
    holder = reg.try_lock("model:iris", "someone-else", "host", 1)
    assert holder is not None and holder["owner"] == "fixture-owner"

    added, created = reg.register_version(stub_manifest("iris", "1.2.0", "c" * 16), "/p")
    assert created and added.id == 4
    reg.set_alias("iris", "production", added.id)
    assert reg.resolve("iris", "production").version == "1.2.0"
    reg.ensure_run("iris-run-3", "iris", "/d", "push")
    reg.record_stage("iris-run-3", "train", StageStatus.PASSED, outputs={"version_id": added.id})
    assert reg.add_deployment("iris", added.id, "local", 10, []).id == 3
