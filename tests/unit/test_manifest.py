"""manifest.json: the current schema, version-1 manifests written by earlier legion-ci, and clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from legion_ci.core.artifact import Artifact
from legion_ci.core.manifest import SCHEMA_VERSION, ExportedModel, Manifest, ManifestError
from tests.manifests import stub_manifest

V1 = Path(__file__).resolve().parents[1] / "fixtures" / "manifest-v1"


def test_a_version_1_artifact_opens_verifies_and_predicts() -> None:
    """The artifact today's train stage wrote (cecde6b): read, converted, its model file checked and loaded."""
    art = Artifact.open(V1 / "iris-artifact")
    raw = json.loads((V1 / "iris-artifact" / "manifest.json").read_text())
    assert "schema_version" not in raw
    m = art.manifest
    assert m.schema_version == SCHEMA_VERSION
    assert (m.name, m.version, m.artifact_id) == ("iris", "1.0.0", "629bc30bfe7d424f")
    assert m.model.sha256 == raw["model"]["sha256"] and m.model.file == "model.skops"
    assert m.model.task == "classification" and m.model.classes == [0, 1, 2]
    assert m.model.estimator == raw["estimator"] and m.model.target == raw["target"]
    assert art.feature_names == [f["name"] for f in raw["input_schema"]["features"]]
    assert m.input_schema.example_predictions == raw["input_schema"]["example_predictions"]
    assert m.data.fingerprint == raw["data_fingerprint"] == raw["data"]["fingerprint"]
    assert m.git.commit == raw["git"]["commit"] and m.metrics == raw["metrics"]
    assert m.logged_metrics == raw["logged_metrics"] and m.packages == raw["packages"]
    rows = pd.DataFrame(m.input_schema.example, columns=art.feature_names)
    assert art.model.predict(rows).tolist() == raw["input_schema"]["example_predictions"]


def test_version_1_regression_and_jenkins_manifests_convert() -> None:
    diabetes = Manifest.load(V1 / "diabetes.json")
    assert diabetes.task == "regression" and diabetes.model.classes is None
    assert diabetes.data.source == "sklearn:load_diabetes"
    built = Manifest.load(V1 / "iris-jenkins.json")
    assert built.jenkins is not None and built.jenkins.build_url == "https://jenkins.example/job/iris/7/"
    assert built.git.commit is None and built.params == {"C": 0.5, "max_iter": 500}


def test_the_current_version_round_trips_and_stores_the_fingerprint_once() -> None:
    m = Manifest.load(V1 / "iris-artifact" / "manifest.json")
    written = m.to_json()
    assert written["schema_version"] == SCHEMA_VERSION
    assert "data_fingerprint" not in written and "input_schema" not in written and "task" not in written
    assert Manifest.parse(json.loads(json.dumps(written)), "round trip") == m


def test_an_export_record_cannot_carry_lineage_keys() -> None:
    """What train.py's export writes lives under `model`; a key such as `name` there is refused."""
    record = stub_manifest("iris", "1.0.0", "a" * 16).model.to_json()
    with pytest.raises(ValueError, match="name"):
        ExportedModel.model_validate({**record, "name": "hijacked"})


def _write(tmp_path: Path, data: object) -> Path:
    folder = tmp_path / "art"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps(data))
    return folder


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["model"].pop("sha256"), r"field 'model.sha256': Field required"),
        (lambda d: d["model"].update(sha256="abc"), r"field 'model.sha256': String should match .* \(got 'abc'\)"),
        (lambda d: d["model"].update(format="pickle"), r"field 'model.format': Input should be 'skops' or 'joblib'"),
        (lambda d: d["model"]["input_schema"].update(features=[]), r"field 'model.input_schema.features'"),
        (lambda d: d.update(metrics={"accuracy": "high"}), r"field 'metrics.accuracy'.*\(got 'high'\)"),
        (lambda d: d.update(colour="blue"), r"field 'colour': Extra inputs are not permitted"),
        (lambda d: d.update(schema_version=3), r"'schema_version': 3 is newer than this legion-ci reads"),
        (lambda d: d.update(schema_version="two"), r"'schema_version': 'two' is not a manifest version"),
    ],
)
def test_a_malformed_manifest_names_the_file_and_the_field(tmp_path: Path, change: object, expected: str) -> None:
    data = stub_manifest("iris", "1.0.0", "a" * 16).to_json()
    change(data)  # type: ignore[operator]
    folder = _write(tmp_path, data)
    with pytest.raises(ManifestError, match=rf"{folder / 'manifest.json'}: (.|\n)*{expected}"):
        Artifact.open(folder)


def test_a_malformed_version_1_manifest_names_its_own_field(tmp_path: Path) -> None:
    data = json.loads((V1 / "diabetes.json").read_text())
    del data["input_schema"]
    with pytest.raises(ManifestError, match=r"field 'input_schema': Field required"):
        Artifact.open(_write(tmp_path, data))


def test_not_json_and_not_an_object(tmp_path: Path) -> None:
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "manifest.json").write_text("{half")
    with pytest.raises(ManifestError, match="manifest.json: unreadable manifest"):
        Artifact.open(folder)
    shutil.rmtree(folder)
    with pytest.raises(ManifestError, match="a manifest is a JSON object, got list"):
        Artifact.open(_write(tmp_path, [1, 2]))
