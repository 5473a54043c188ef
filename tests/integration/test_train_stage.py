"""The train stage runs the model's real train.py in its own process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from legion_ci.cli import main
from legion_ci.core.errors import StageFailed
from legion_ci.core.registry import Registry
from legion_ci.core.settings import Settings
from legion_ci.pipeline.progress import PlainReporter
from legion_ci.pipeline.runner import single_stage
from legion_ci.pipeline.stages.base import RunOptions


def train(settings: Settings, registry: Registry, model_dir: Path, run_id: str = "r1"):
    return single_stage(
        settings, registry, "train", str(model_dir), run_id, "push", RunOptions(), PlainReporter(verbose_logs=False)
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
    assert len(registry.versions("iris")) == 2


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
