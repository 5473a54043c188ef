"""legion.yaml: defaults, and one clear message per malformed spec naming the field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from legion_ci.cli import main
from legion_ci.core.errors import SpecError
from legion_ci.core.spec import BUNDLED_DATASETS, load_spec
from tests.conftest import EXAMPLES


def write_spec(folder: Path, data: dict) -> Path:
    (folder / "legion.yaml").write_text(yaml.safe_dump(data))
    return folder


def base() -> dict:
    return yaml.safe_load((EXAMPLES / "iris" / "legion.yaml").read_text())


def test_examples_are_valid() -> None:
    for name in ("iris", "diabetes"):
        loaded = load_spec(EXAMPLES / name)
        assert loaded.spec.name == name


def test_defaults_fill_the_minimal_spec(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("")
    spec = load_spec(
        write_spec(tmp_path, {"name": "m", "version": "0.1.0", "train": {"data": "sklearn:load_iris"}})
    ).spec
    assert spec.deploy.target == "local" and spec.deploy.auth is True
    assert spec.train.seed == 42 and spec.train.test_size == 0.2
    assert spec.perf.sla.p95_ms == 100 and spec.schedule.retrain is None
    assert spec.rollout.strategy == "immediate" and spec.rollout.steps == (5, 20, 50, 100)


def test_rollout_section_reads_durations_and_guards(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("")
    rollout = {
        "strategy": "canary",
        "steps": [10, 100],
        "metric": "mse",
        "margin": 5.0,
        "max_duration": "2d",
        "at_max_duration": "promote",
        "guard": {"max_error_rate": 0.01, "max_p99_ms": 250},
    }
    data = {"name": "m", "version": "0.1.0", "train": {"data": "sklearn:load_diabetes"}, "rollout": rollout}
    spec = load_spec(write_spec(tmp_path, data)).spec.rollout
    assert spec.strategy == "canary" and spec.steps == (10, 100) and spec.max_duration == 2 * 86400
    assert spec.guard.max_p99_ms == 250 and spec.guard.max_error_rate == 0.01 and spec.at_max_duration == "promote"


def test_duration_accepts_units(tmp_path: Path) -> None:
    data = base()
    data["perf"]["duration"] = "2m"
    (tmp_path / "train.py").write_text("")
    (tmp_path / "tests").mkdir()
    assert load_spec(write_spec(tmp_path, data)).spec.perf.duration == 120


MALFORMED = {
    "unknown top-level field": (lambda d: d.update(trian={}), "trian: unknown field"),
    "unknown nested field": (lambda d: d["gate"].update(treshold={}), "gate.treshold: unknown field"),
    "wrong type": (lambda d: d["perf"].update(users="many"), "perf.users"),
    "bad cron": (lambda d: d.update(schedule={"retrain": "H 25 * * *"}), "schedule.retrain: hour field '25'"),
    "cron with too few fields": (lambda d: d.update(schedule={"retrain": "H H *"}), "schedule.retrain: 'H H *' has 3"),
    "version not semver": (lambda d: d.update(version="1.0"), "version: '1.0' is not a semantic version"),
    "version as number": (lambda d: d.update(version=1.0), "version: 1.0 is not a semantic version"),
    "missing required field": (lambda d: d.pop("name"), "name: required field is missing"),
    "bad target": (lambda d: d["deploy"].update(target="mars"), "deploy.target"),
    "weight out of range": (lambda d: d["deploy"].update(traffic_weight=150), "deploy.traffic_weight"),
    "threshold without bounds": (lambda d: d["gate"]["thresholds"].update(f1={}), "gate.thresholds.f1"),
    "min above max": (lambda d: d["gate"]["thresholds"].update(f1={"min": 0.9, "max": 0.1}), "min 0.9 is greater"),
    "bad dataset name": (
        lambda d: d["train"].update(data="sklearn:iris"),
        "train.data: 'sklearn:iris' is not a dataset bundled with scikit-learn; did you mean sklearn:load_iris?",
    ),
    "unknown bundled dataset": (
        lambda d: d["train"].update(data="sklearn:load_wines"),
        "did you mean sklearn:load_wine? (one of sklearn:load_breast_cancer,",
    ),
    "download-only dataset": (
        lambda d: d["train"].update(data="sklearn:load_files"),
        "train.data: 'sklearn:load_files'",
    ),
    "named tests folder missing": (
        lambda d: d["gate"].update(tests="model_tests"),
        "gate.tests: folder 'model_tests' not found",
    ),
    "bad name": (lambda d: d.update(name="My Model"), "name: 'My Model' is not a model name"),
    "bad duration": (lambda d: d["perf"].update(duration="soon"), "perf.duration: 'soon' is not a duration"),
    "missing data file": (
        lambda d: d["train"].update(data="data/train.csv"),
        "train.data: file 'data/train.csv' not found",
    ),
    "data outside the folder": (
        lambda d: d["train"].update(data="/etc/passwd"),
        "train.data: '/etc/passwd' resolves to '/etc/passwd', outside the model folder",
    ),
    "entrypoint climbing out": (
        lambda d: d["train"].update(entrypoint="../../train.py"),
        "train.entrypoint: '../../train.py' resolves to",
    ),
    "tests outside the folder": (lambda d: d["gate"].update(tests="/tmp"), "gate.tests: '/tmp' resolves to '/tmp'"),
    "missing train.py": (lambda d: d["train"].update(entrypoint="fit.py"), "train.entrypoint: file 'fit.py' not found"),
    "unknown rollout strategy": (lambda d: d.update(rollout={"strategy": "blue-green"}), "rollout.strategy"),
    "rollout steps not increasing": (
        lambda d: d.update(rollout={"steps": [20, 5, 100]}),
        "rollout.steps: [20, 5, 100]: steps must increase",
    ),
    "rollout steps not ending at 100": (
        lambda d: d.update(rollout={"steps": [5, 50]}),
        "rollout.steps: [5, 50]: the last step must be 100",
    ),
    "rollout step out of range": (
        lambda d: d.update(rollout={"steps": [0, 100]}),
        "rollout.steps: [0, 100]: every step is a percent from 1 to 100",
    ),
    "rollout steps empty": (lambda d: d.update(rollout={"steps": []}), "rollout.steps: give at least one step"),
    "rollout metric not per-row": (
        lambda d: d.update(rollout={"metric": "f1"}),
        "rollout.metric: 'f1' is not a per-row metric a rollout can decide on",
    ),
    "rollout metric misspelt": (lambda d: d.update(rollout={"metric": "acuracy"}), "did you mean 'accuracy'?"),
    "rollout alpha out of range": (lambda d: d.update(rollout={"alpha": 0.7}), "rollout.alpha"),
    "rollout negative margin": (lambda d: d.update(rollout={"margin": -0.1}), "rollout.margin"),
    "rollout bad max_duration": (
        lambda d: d.update(rollout={"max_duration": "a week"}),
        "rollout.max_duration: 'a week' is not a duration",
    ),
    "rollout bad at_max_duration": (lambda d: d.update(rollout={"at_max_duration": "roll"}), "rollout.at_max_duration"),
    "rollout bad schedule": (lambda d: d.update(rollout={"schedule": "H 25 * * *"}), "rollout.schedule: hour field"),
    "rollout guard error rate over 1": (
        lambda d: d.update(rollout={"guard": {"max_error_rate": 2}}),
        "rollout.guard.max_error_rate",
    ),
    "rollout guard unknown field": (
        lambda d: d.update(rollout={"guard": {"p99": 100}}),
        "rollout.guard.p99: unknown field",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_spec_names_the_field(case: str, iris_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mutate, expected = MALFORMED[case]
    data = base()
    mutate(data)
    write_spec(iris_dir, data)
    with pytest.raises(SpecError) as info:
        load_spec(iris_dir)
    assert expected in str(info.value)
    assert str(iris_dir / "legion.yaml") in str(info.value)
    # the CLI says the same thing once, on stderr, with a non-zero exit and no traceback
    assert main(["validate", str(iris_dir)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_every_bundled_dataset_loads_offline() -> None:
    import sklearn.datasets

    for name in BUNDLED_DATASETS:
        bunch = getattr(sklearn.datasets, name)(as_frame=True)
        assert len(bunch.frame) > 0, name


def test_default_tests_folder_may_be_absent(iris_dir: Path) -> None:
    """A model with no tests is allowed; only a folder the spec names must exist."""
    data = base()
    data["gate"].pop("tests", None)
    write_spec(iris_dir, data)
    shutil.rmtree(iris_dir / "tests")
    assert load_spec(iris_dir).spec.gate.tests == "tests"


def test_a_symlink_out_of_the_model_folder_is_refused(iris_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.csv"
    outside.write_text("a,target\n1,0\n")
    (iris_dir / "data.csv").symlink_to(outside)
    data = base()
    data["train"]["data"] = "data.csv"
    write_spec(iris_dir, data)
    with pytest.raises(SpecError, match="train.data: 'data.csv' resolves to .*outside the model folder"):
        load_spec(iris_dir)


def test_not_yaml(iris_dir: Path) -> None:
    (iris_dir / "legion.yaml").write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(iris_dir)


def test_not_a_mapping(iris_dir: Path) -> None:
    (iris_dir / "legion.yaml").write_text("- a list\n")
    with pytest.raises(SpecError, match="expected a mapping"):
        load_spec(iris_dir)


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no legion.yaml"):
        load_spec(tmp_path)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "nowhere")


def test_every_problem_is_listed_at_once(iris_dir: Path) -> None:
    data = base()
    data["version"] = "x"
    data["deploy"]["replicas"] = 0
    write_spec(iris_dir, data)
    with pytest.raises(SpecError) as info:
        load_spec(iris_dir)
    assert len(info.value.problems) == 2


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path: Path) -> None:
    (tmp_path / "legion.yaml").write_text(
        "name: iris\ngate:\n  metrics:\n    accuracy: 0.9\ngate:\n  metrics:\n    accuracy: 0.1\n"
    )
    with pytest.raises(SpecError, match=r"key 'gate' appears twice \(lines 2 and 5\)"):
        load_spec(tmp_path)


def test_an_alias_bomb_is_refused_in_a_short_message(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for k in "bcdefghi":
        prev = chr(ord(k) - 1)
        lines.append(f"{k}: &{k} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]")
    (tmp_path / "legion.yaml").write_text("\n".join(lines) + "\nname: *i\n")
    with pytest.raises(SpecError, match="aliases") as caught:
        load_spec(tmp_path)
    assert len(str(caught.value)) < 2000


def test_a_spec_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    (tmp_path / "legion.yaml").write_text("name: iris\n" + "# pad\n" * 50_000)
    with pytest.raises(SpecError, match="over the limit of 262144 bytes"):
        load_spec(tmp_path)
