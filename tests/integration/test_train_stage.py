"""The train stage runs the model's real train.py in its own process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from legion_ci.cli import main
from legion_ci.core.errors import StageFailed
from legion_ci.core.registry import Registry
from legion_ci.core.settings import Settings
from legion_ci.feedback.capture import CaptureWriter
from legion_ci.pipeline.progress import PlainReporter
from legion_ci.pipeline.runner import single_stage
from legion_ci.pipeline.stages.base import RunOptions


def train(settings: Settings, registry: Registry, model_dir: Path, run_id: str = "r1", flow: str = "push"):
    return single_stage(
        settings, registry, "train", str(model_dir), run_id, flow, RunOptions(), PlainReporter(verbose_logs=False)
    )[1]


def test_manifest_carries_lineage(
    settings: Settings, registry: Registry, iris_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUILD_URL", "https://jenkins.example/job/iris/7/")
    monkeypatch.setenv("BUILD_NUMBER", "7")
    result = train(settings, registry, iris_dir)
    manifest = json.loads((Path(result.outputs["path"]) / "manifest.json").read_text())
    assert manifest["jenkins"] == {
        "build_url": "https://jenkins.example/job/iris/7/",
        "build_number": "7",
        "job_name": None,
        "build_tag": None,
    }
    assert manifest["schema_version"] == 2 and "data_fingerprint" not in manifest
    assert len(manifest["data"]["fingerprint"]) == 64
    assert manifest["params"] == {"C": 1.0, "max_iter": 500}
    assert manifest["packages"]["scikit-learn"] and manifest["packages"]["python"]
    assert set(manifest["git"]) == {"commit", "branch", "dirty"}
    assert manifest["metrics"]["accuracy"] > 0.8 and "train_accuracy" in manifest["metrics"]
    features = [f["name"] for f in manifest["model"]["input_schema"]["features"]]
    assert features[0] == "sepal length (cm)" and len(manifest["model"]["input_schema"]["example"]) == 5
    assert (Path(result.outputs["path"]) / "holdout.csv").is_file()


def test_same_inputs_reuse_the_artifact_and_a_change_makes_a_new_one(
    settings: Settings, registry: Registry, iris_dir: Path
) -> None:
    first = train(settings, registry, iris_dir, "r1")
    again = train(settings, registry, iris_dir, "r2")
    assert again.outputs["artifact_id"] == first.outputs["artifact_id"] and again.outputs["reused"]
    spec = yaml.safe_load((iris_dir / "legion.yaml").read_text())
    spec["train"]["params"]["C"] = 0.5
    (iris_dir / "legion.yaml").write_text(yaml.safe_dump(spec))
    changed = train(settings, registry, iris_dir, "r3")
    assert changed.outputs["artifact_id"] != first.outputs["artifact_id"]
    # legion.yaml still says 1.0.0, which names the first artifact: the new one is 1.0.1, and it says so.
    assert [v.version for v in registry.versions("iris")] == ["1.0.0", "1.0.1"]
    assert "version 1.0.0 names another artifact of iris; registered as 1.0.1" in changed.summary


def test_a_retrain_uses_every_label_once_whatever_versions_were_registered_since(
    settings: Settings, registry: Registry, iris_dir: Path
) -> None:
    """Before: a retrain took feedback "since the newest version": a halted retrain's version consumed it,
    and late ground truth for an older prediction was dropped."""
    first = train(settings, registry, iris_dir, "r1")
    registry.set_alias("iris", "production", first.outputs["version_id"])
    production = registry.alias("iris", "production")
    assert production is not None
    features = production.manifest.input_schema.names
    store = CaptureWriter(settings.feedback_dir / "iris", "iris", "1.0.0", features, "target", fsync_interval=0.05)
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.1, 4.4, 1.4], [6.3, 3.3, 6.0, 2.5], [5.0, 3.4, 1.5, 0.2]]
    old = time.time() - 3600
    for i, row in enumerate(rows[:3]):
        store.prediction(f"p{i}", [row], [i], None, 0.1, old + i)
    store.feedback("p0", 0, None, True)
    store.feedback("p1", 1, None, True)
    store.feedback("p1", "class_7", None, True)  # stored before the endpoint checked labels
    store.sync()
    halted = train(settings, registry, iris_dir, "r2", "retrain")  # registered, never promoted
    store.feedback("p2", 2, None, True)  # late ground truth for a prediction made an hour ago
    store.prediction("p3", [rows[3]], [0], None, 0.1, time.time())
    store.feedback("p3", 0, None, True)
    store.close()
    later = train(settings, registry, iris_dir, "r3", "retrain")
    exported = pd.read_csv(settings.runs_dir / "r3" / "train" / "feedback.csv")
    assert sorted(exported.to_numpy().tolist()) == sorted(
        [*r, float(t)] for r, t in zip(rows, [0, 1, 2, 0], strict=True)
    )
    window = registry.version_by_id(halted.outputs["version_id"]).manifest.data.feedback
    assert window is not None and (window.rows, window.requests, window.new_requests) == (2, 2, 2)
    assert window.left_out == {} and len(window.fingerprint) == 64
    window = registry.version_by_id(later.outputs["version_id"]).manifest.data.feedback
    assert window is not None and (window.rows, window.new_requests) == (4, 4)
    assert [v.version for v in registry.versions("iris")] == ["1.0.0", "1.0.1", "1.0.2"]
    registry.set_alias("iris", "production", later.outputs["version_id"])
    again = train(settings, registry, iris_dir, "r4", "retrain")  # nothing new: nothing is used twice
    assert again.outputs["reused"] and again.halt is not None and "nothing to retrain" in again.halt


BROKEN = {
    "raises": ("raise ValueError('the data is upside down')", "ValueError: the data is upside down"),
    "never exports": ("from legion_ci import toolchain\nctx = toolchain.init()", "without exporting a model"),
    "logs a non-number": (
        "from legion_ci import toolchain\nctx = toolchain.init()\ntoolchain.log_metric('acc', 'high')",
        "log_metric('acc', 'high'): value must be a number",
    ),
    "exports an unfitted model": (
        "from sklearn.linear_model import Ridge\nfrom legion_ci import toolchain\n"
        "ctx = toolchain.init()\ntoolchain.export(Ridge())",
        "Ridge is not fitted",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_train_py_fails_the_stage_with_a_clear_reason(
    case: str, settings: Settings, registry: Registry, iris_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, expected = BROKEN[case]
    (iris_dir / "train.py").write_text(code + "\n")
    with pytest.raises(StageFailed) as info:
        train(settings, registry, iris_dir)
    assert expected in str(info.value)
    assert registry.versions("iris") == []
    assert not list((settings.artifacts_dir / "iris").glob(".staging-*"))  # nothing half-written
    assert main(["train", str(iris_dir), "--run-id", f"cli-{case.replace(' ', '-')}"]) == 1
    err = capsys.readouterr().err
    assert expected in err and "Traceback (most recent call last)" not in err


def test_train_py_runs_by_hand(iris_dir: Path) -> None:
    done = subprocess.run([sys.executable, "train.py"], cwd=iris_dir, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    exported = json.loads((iris_dir / ".legion" / "train-out" / "export.json").read_text())
    assert exported["task"] == "classification" and exported["classes"] == [0, 1, 2]


def test_train_registers_the_manifest_digest_and_a_swapped_manifest_is_refused(
    settings: Settings, registry: Registry, iris_dir: Path
) -> None:
    import hashlib

    from legion_ci.core.store import StoreError, open_version

    result = train(settings, registry, iris_dir)
    record = registry.version_by_id(result.outputs["version_id"])
    manifest = Path(result.outputs["path"]) / "manifest.json"
    assert record.manifest_digest == "sha256:" + hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert open_version(settings, record).id == record.artifact_id
    swapped = json.loads(manifest.read_text())
    swapped["metrics"]["accuracy"] = 1.0  # a better-looking model; the model file and its sha256 unchanged
    manifest.write_text(json.dumps(swapped))
    with pytest.raises(StoreError, match="not the manifest that was registered"):
        open_version(settings, record)
