"""legion_ci/core/settings.py: every LEGION_* variable typed and declared once; bad values name the variable,
the value and what was expected; a child process gets the same settings through child_env."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from legion_ci.core.errors import EXIT_ERROR, SettingsError
from legion_ci.core.settings import Settings, child_env, env_name, load_settings
from legion_ci.core.settings_doc import EXTERNAL

ROOT = Path(__file__).resolve().parents[2]
NOT_VARIABLES = {"LEGION_HOME_IN_WORKSPACE", "LEGION_DIGEST"}  # a Python constant; a placeholder in templates


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for field in Settings.model_fields:
        monkeypatch.delenv(env_name(field), raising=False)
    monkeypatch.setenv("LEGION_HOME", str(tmp_path / "home"))


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("LEGION_TRAFFIC_WEIGHT", "abc", "a whole number from 1 to 100"),
        ("LEGION_TRAFFIC_WEIGHT", "150", "a whole number from 1 to 100"),
        ("LEGION_TRAFFIC_WEIGHT", "0", "a whole number from 1 to 100"),
        ("LEGION_REGISTRY_URL", "registry.db", "an SQLAlchemy URL such as sqlite:///PATH"),
        ("LEGION_TARGET", "mars", "local or kubernetes"),
        ("LEGION_AUTH", "maybe", "on or off"),
        ("LEGION_SERVE_SLIM", "sometimes", "on or off"),
        ("LEGION_JWT_MAX_TTL", "forever", "a duration such as 3600, 90s, 30m, 12h or 7d"),
        ("LEGION_JWT_MAX_TTL", "0", "a duration such as 3600, 90s, 30m, 12h or 7d"),
        ("LEGION_ROUTER_PORT", "eighty", "a port from 0 to 65535"),
        ("LEGION_ROUTER_PORT", "70000", "a port from 0 to 65535"),
        ("LEGION_ROUTER_STICKY_HEADER", "X User", "an HTTP header name"),
        ("LEGION_ROUTER_STICKY_COOKIE", "uid;x", "a cookie name"),
        ("LEGION_ROUTER_SHADOW_TIMEOUT", "0", "a positive number of seconds"),
        ("LEGION_GATEWAY_RELEASE", "Legion_Platform", "a Helm release name"),
    ],
)
def test_a_bad_value_names_the_variable_the_value_and_what_was_expected(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    error = info.value
    assert (error.variable, error.value) == (variable, value)
    assert str(error) == f"{variable}={value!r} is not valid (expected {error.expected})"
    assert expected in error.expected and error.exit_code == EXIT_ERROR


def test_a_bad_command_line_value_names_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGION_REGISTRY_URL", "sqlite:///fine.db")
    with pytest.raises(SettingsError, match=r"^--registry-url='nope' is not valid \(expected an SQLAlchemy URL"):
        load_settings(registry_url="nope")


def test_precedence_default_then_environment_then_command_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    defaults = load_settings()
    assert defaults.traffic_weight is None and defaults.jwt_audience == "legion-ci" and defaults.auth is True
    assert defaults.registry_url == f"sqlite:///{tmp_path / 'home' / 'registry.db'}"
    monkeypatch.setenv("LEGION_JWT_MAX_TTL", "12h")
    monkeypatch.setenv("LEGION_AUTH", "off")
    monkeypatch.setenv("LEGION_TRAFFIC_WEIGHT", "35")
    monkeypatch.setenv("LEGION_SKIP_PERF_REASON", "")  # Jenkins passes empty build parameters: unset
    read = load_settings(home=tmp_path / "other")
    assert (read.jwt_max_ttl, read.auth, read.traffic_weight, read.skip_perf_reason) == (43200, False, 35, None)
    assert read.home == (tmp_path / "other").resolve()
    assert read.registry_url == f"sqlite:///{(tmp_path / 'other').resolve() / 'registry.db'}"


def test_secrets_stay_out_of_reprs_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGION_JWT_SECRET", "s3cret-value")
    monkeypatch.setenv("LEGION_REGISTRY_PASSWORD", "hunter2-value")
    read = load_settings()
    assert read.jwt_secret_value == "s3cret-value"
    assert "s3cret-value" not in repr(read) and "hunter2-value" not in repr(read)


def test_a_child_process_gets_the_same_settings_and_only_the_internal_ones_it_is_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LEGION_JWT_ISSUER", "https://issuer.example")
    monkeypatch.setenv("LEGION_JWT_SECRET", "s3cret")
    monkeypatch.setenv("LEGION_AUTH", "off")
    monkeypatch.setenv("LEGION_ROUTER_STATE", str(tmp_path / "parent-router.json"))  # the parent's own, not passed on
    parent = load_settings(home=tmp_path / "flag-home")
    env = child_env(parent, router_state=tmp_path / "child.json")
    assert env["LEGION_HOME"] == str((tmp_path / "flag-home").resolve())  # a --home flag reaches the child
    assert env["LEGION_AUTH"] == "off" and env["LEGION_JWT_SECRET"] == "s3cret"
    assert env["LEGION_ROUTER_STATE"] == str(tmp_path / "child.json")
    assert all(value for value in env.values())
    for field in Settings.model_fields:
        monkeypatch.delenv(env_name(field), raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    child = load_settings()
    assert child.model_dump(exclude={"router_state"}) == parent.model_dump(exclude={"router_state"})
    with pytest.raises(KeyError, match="not_a_setting"):
        child_env(parent, not_a_setting=1)


def _repository_names() -> set[str]:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    found: set[str] = set()
    for name in files:
        path = ROOT / name
        if name.startswith("tests/fixtures/") or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        found.update(re.findall(r"\bLEGION_[A-Z][A-Z0-9_]*[A-Z0-9]\b", text))
    return found


def test_every_legion_variable_in_the_repository_is_declared_once() -> None:
    declared = {env_name(field) for field in Settings.model_fields}
    external = {name for name, _, _ in EXTERNAL}
    assert not declared & external, "declared both as a setting and as another program's variable"
    undeclared = _repository_names() - declared - external - NOT_VARIABLES
    assert not undeclared, f"declare these in legion_ci/core/settings.py (or settings_doc.EXTERNAL): {undeclared}"


def test_no_module_but_settings_reads_a_legion_variable_and_the_server_writes_no_environment() -> None:
    reads = re.compile(r"environ(\.get)?\s*[\[(]\s*(f?[\"']LEGION_|ENV_)|getenv\(\s*[\"']LEGION_")
    offenders = []
    for path in sorted((ROOT / "legion_ci").rglob("*.py")):
        if path.name == "settings.py" and path.parent.name == "core":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if reads.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "read these through Settings:\n" + "\n".join(offenders)
    server = (ROOT / "legion_ci" / "serving" / "server.py").read_text(encoding="utf-8")
    assert not re.search(r"os\.environ\[[^\]]+\]\s*=|environ\.(update|setdefault|pop)\(|putenv\(", server)


def test_every_bad_setting_of_one_reading_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGION_TRAFFIC_WEIGHT", "150")
    monkeypatch.setenv("legion_target", "mars")  # names match in any letter case, as pydantic-settings reads them
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value).splitlines() == [
        "LEGION_TARGET='mars' is not valid (expected local or kubernetes)",
        "LEGION_TRAFFIC_WEIGHT='150' is not valid (expected a whole number from 1 to 100)",
    ]
    assert [e.variable for e in info.value.others] == ["LEGION_TRAFFIC_WEIGHT"]
