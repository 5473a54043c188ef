"""A model's own tests, run by the gate in a pytest subprocess with legion-ci's fixtures."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

from legion_ci.core.artifact import Artifact
from legion_ci.quality.modeltests.runner import run_model_tests
from tests.unit.test_gate_checks import make_artifact

TESTS = {
    "test_ok.py": """
        import numpy as np

        def test_fixtures(model, artifact, test_data):
            x, y = test_data
            assert artifact.name == "iris" and len(x) == len(y) > 10
            assert (model.predict(x) == y).mean() > 0.8

        def test_against_production(model, production_model, test_data):
            x, y = test_data
            assert (model.predict(x) == y).mean() >= (production_model.predict(x) == y).mean() - 0.05
    """,
    "test_broken.py": """
        def test_says_setosa_is_virginica(model):
            assert model.predict([[5.1, 3.5, 1.4, 0.2]])[0] == 2, "setosa should be class 2"
    """,
}


@pytest.fixture(scope="module")
def candidate(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    return make_artifact(tmp_path_factory.mktemp("c") / "cand", LogisticRegression(max_iter=500), "cand0000")


def model_dir(root: Path, files: dict[str, str], folder: str = "tests") -> Path:
    (root / folder).mkdir(parents=True)
    for name, text in files.items():
        (root / folder / name).write_text(textwrap.dedent(text))
    return root


def test_each_model_test_is_a_check_and_failures_carry_the_assertion(candidate: Artifact, tmp_path: Path) -> None:
    folder = model_dir(tmp_path / "m", TESTS)
    result = run_model_tests(folder, "tests", candidate.path, None, tmp_path / "out")
    checks = {c.name: c for c in result.checks}
    assert set(checks) == {
        "tests/test_ok.py::test_fixtures",
        "tests/test_ok.py::test_against_production",
        "tests/test_broken.py::test_says_setosa_is_virginica",
    }
    assert checks["tests/test_ok.py::test_fixtures"].passed
    assert checks["tests/test_ok.py::test_against_production"].skipped  # no production version yet
    assert "no production version yet" in checks["tests/test_ok.py::test_against_production"].message
    broken = checks["tests/test_broken.py::test_says_setosa_is_virginica"]
    assert not broken.passed and "setosa should be class 2" in broken.message
    assert "assert" in broken.detail
    assert result.exit_code == 1 and result.log is not None and result.log.is_file()
    assert not (folder / ".pytest_cache").exists() and not list(folder.rglob("__pycache__"))


def test_production_model_fixture_is_given_when_there_is_production(candidate: Artifact, tmp_path: Path) -> None:
    folder = model_dir(tmp_path / "m", {"test_ok.py": TESTS["test_ok.py"]})
    result = run_model_tests(folder, "tests", candidate.path, candidate.path, tmp_path / "out")
    assert [c.verdict for c in result.checks] == ["passed", "passed"], [c.message for c in result.checks]


def test_a_test_file_that_does_not_import_fails_the_gate(candidate: Artifact, tmp_path: Path) -> None:
    folder = model_dir(
        tmp_path / "m",
        {
            "test_typo.py": "import numpy as np\ndef test_x(model):\n    assert np.nope\n",
            "test_syntax.py": "def test_x(model)\n    pass\n",
        },
    )
    result = run_model_tests(folder, "tests", candidate.path, None, tmp_path / "out")
    failed = [c for c in result.checks if not c.passed]
    assert failed and any("test_syntax.py" in c.name and "error" in c.message for c in failed)


def test_missing_or_empty_tests_folder(candidate: Artifact, tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (skipped,) = run_model_tests(folder, "tests", candidate.path, None, tmp_path / "out").checks
    assert skipped.skipped and "no tests/ folder" in skipped.message
    (missing,) = run_model_tests(folder, "checks", candidate.path, None, tmp_path / "out", required=True).checks
    assert not missing.passed and missing.message.startswith("gate.tests: folder 'checks' not found")
    empty = model_dir(tmp_path / "e", {"helpers.py": "X = 1\n"})
    (nothing,) = run_model_tests(empty, "tests", candidate.path, None, tmp_path / "out2").checks
    assert nothing.skipped and "collected no tests" in nothing.message
