"""Artifacts: content-addressed ids, atomic publishing, integrity checks before loading, tarballs."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from legion_ci.core.artifact import Artifact, artifact_id, publish, save_model, unpack, write_json_atomic
from legion_ci.core.errors import ArtifactError
from legion_ci.core.manifest import ExportedModel, Feature, InputSchema, Manifest


def make_artifact(folder: Path, aid: str = "abc123") -> Path:
    folder.mkdir(parents=True)
    x, y = load_iris(return_X_y=True)
    info = save_model(LogisticRegression(max_iter=300).fit(x, y), folder)
    schema = InputSchema(
        features=[Feature(name=f"f{i}", dtype="float64") for i in range(4)],
        example=[[5.1, 3.5, 1.4, 0.2]],
        example_predictions=[0],
    )
    model = ExportedModel(**info.model_dump(), task="classification", input_schema=schema)
    manifest = Manifest(name="iris", version="1.0.0", artifact_id=aid, model=model)
    write_json_atomic(folder / "manifest.json", manifest.to_json())
    return folder


def test_same_inputs_same_id_any_change_new_id() -> None:
    ident = {"commit": "c1", "data": "d1", "params": {"C": 1.0}, "seed": 42}
    assert artifact_id(ident) == artifact_id(dict(reversed(list(ident.items()))))
    for key, value in (("commit", "c2"), ("data", "d2"), ("params", {"C": 2.0}), ("seed", 1)):
        assert artifact_id({**ident, key: value}) != artifact_id(ident)


def test_model_is_saved_with_skops_and_loads(tmp_path: Path) -> None:
    art = Artifact.open(make_artifact(tmp_path / "a"))
    assert art.manifest.model.format == "skops"
    assert art.model.predict([[5.1, 3.5, 1.4, 0.2]])[0] == 0


def test_tampered_model_file_is_refused(tmp_path: Path) -> None:
    folder = make_artifact(tmp_path / "a")
    with (folder / "model.skops").open("ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(ArtifactError, match="does not match the manifest"):
        _ = Artifact.open(folder).model


def test_incomplete_manifest_is_refused(tmp_path: Path) -> None:
    folder = make_artifact(tmp_path / "a")
    data = json.loads((folder / "manifest.json").read_text())
    del data["model"]["input_schema"]
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=r"manifest.json: invalid manifest\n  - field 'model.input_schema'"):
        Artifact.open(folder)


def test_not_an_artifact(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no manifest.json"):
        Artifact.open(tmp_path)


def test_publish_keeps_the_first_copy(tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = publish(make_artifact(tmp_path / "s1"), store)
    second = publish(make_artifact(tmp_path / "s2"), store)
    assert first.path == second.path == store / "iris" / "abc123"
    assert not (tmp_path / "s2").exists()


def test_pack_and_unpack_round_trip(tmp_path: Path) -> None:
    art = Artifact.open(make_artifact(tmp_path / "a"))
    tarball = art.pack(tmp_path)
    copy = unpack(tarball, tmp_path / "copy")
    assert copy.id == art.id and copy.model.predict([[5.1, 3.5, 1.4, 0.2]])[0] == 0


def test_unpack_refuses_paths_outside_the_target(tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar.gz"
    payload = tmp_path / "payload"
    payload.write_text("x")
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(payload, arcname="../escaped")
    with pytest.raises(ArtifactError, match="cannot unpack"):
        unpack(evil, tmp_path / "out")
    assert not (tmp_path / "escaped").exists()


def test_write_json_atomic_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    with pytest.raises(TypeError):
        write_json_atomic(target, {"ok": 1, (1, 2): "tuple keys are not JSON"})
    assert not target.exists() and list(tmp_path.iterdir()) == []
