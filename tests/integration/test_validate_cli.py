"""`legion-ci validate` through the real CLI catches what would fail later and can be known without training
(issue 12, item 7): a named gate.tests folder that is not there, an unknown sklearn: dataset (with the closest
name), Python files the pipeline runs that do not compile, a CSV without the spec's label column. Nothing is
recorded, and the exit status is 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from legion_ci.core import preflight
from legion_ci.quality.perf import locustfile


def validate(home: Path, model: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEGION_", "BUILD_", "JENKINS_"))}
    env["LEGION_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "legion_ci", "validate", str(model), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def edit_spec(model: Path, **train: object) -> None:
    spec = yaml.safe_load((model / "legion.yaml").read_text())
    spec["train"].update(train)
    (model / "legion.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def test_a_named_tests_folder_that_is_not_there(tmp_path: Path, iris_dir: Path) -> None:
    text = (iris_dir / "legion.yaml").read_text().replace("tests: tests", "tests: model_tests")
    (iris_dir / "legion.yaml").write_text(text)
    done = validate(tmp_path, iris_dir)
    assert done.returncode == 2
    assert "gate.tests: folder 'model_tests' not found" in done.stderr, done.stderr


@pytest.mark.parametrize(("name", "suggested"), [("iris", "load_iris"), ("load_wines", "load_wine")])
def test_an_unknown_sklearn_dataset_gets_the_closest_name(
    tmp_path: Path, iris_dir: Path, name: str, suggested: str
) -> None:
    edit_spec(iris_dir, data=f"sklearn:{name}")
    done = validate(tmp_path, iris_dir)
    assert done.returncode == 2
    assert f"'sklearn:{name}' is not a dataset bundled with scikit-learn" in done.stderr, done.stderr
    assert f"did you mean sklearn:{suggested}?" in done.stderr


def test_every_python_file_the_pipeline_runs_must_compile_and_all_are_listed(tmp_path: Path, iris_dir: Path) -> None:
    (iris_dir / "train.py").write_text("import legion_ci.toolchain as lc\nif True\n    pass\n")
    (iris_dir / "tests" / "test_broken.py").write_text("def test_x(:\n    pass\n")
    (iris_dir / "perf").mkdir()
    (iris_dir / "perf" / "locustfile.py").write_text("from locust import HttpUser\nclass U(HttpUser)\n")
    done = validate(tmp_path, iris_dir)
    assert done.returncode == 2
    assert f"train.entrypoint: {iris_dir / 'train.py'}: not valid Python" in done.stderr, done.stderr
    assert "(line 2)" in done.stderr
    assert f"gate.tests: {iris_dir / 'tests' / 'test_broken.py'}: not valid Python" in done.stderr
    assert f"perf (the model's locustfile): {iris_dir / 'perf' / 'locustfile.py'}: not valid Python" in done.stderr
    assert not (tmp_path / "registry.db").exists()  # plain validation records nothing


def test_a_csv_without_the_label_column(tmp_path: Path, iris_dir: Path) -> None:
    (iris_dir / "data.csv").write_text("sepal_length,sepal_width,species\n5.1,3.5,0\n4.9,3.0,1\n")
    edit_spec(iris_dir, data="data.csv", target="specie")
    done = validate(tmp_path, iris_dir)
    assert done.returncode == 2
    assert "train.target: column 'specie' is not in 'data.csv'; did you mean 'species'?" in done.stderr, done.stderr
    assert "(columns: sepal_length, sepal_width, species)" in done.stderr
    (iris_dir / "data.csv").write_text("")
    assert "train.data: 'data.csv' is empty" in validate(tmp_path, iris_dir).stderr


def test_validate_as_a_stage_of_a_run_checks_the_same(tmp_path: Path, iris_dir: Path) -> None:
    (iris_dir / "train.py").write_text("def broken(:\n")
    done = validate(tmp_path, iris_dir, "--run-id", "r1")
    assert done.returncode == 2 and "train.entrypoint:" in done.stderr and "not valid Python" in done.stderr


def test_a_valid_example_still_validates(tmp_path: Path, iris_dir: Path) -> None:
    done = validate(tmp_path, iris_dir)
    assert done.returncode == 0 and "valid (iris 1.0.0" in done.stdout, done.stderr


def test_preflight_looks_where_perf_does() -> None:
    assert Path(preflight.MODEL_LOCUSTFILE) == locustfile.MODEL_LOCUSTFILE
