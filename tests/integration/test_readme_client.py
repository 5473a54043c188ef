"""The documented examples, run as written: the README's curl and Python (httpx) blocks against a real iris
model server behind a real local router, with a token from `legion-ci token create`; docs/spec.md's recipe
for loading a registered model in Python."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from legion_ci.core.artifact import Artifact
from legion_ci.core.processes import spawn, stop_pid, wait_ready
from legion_ci.core.registry import Registry
from legion_ci.core.settings import load_settings
from legion_ci.deploy import local_router
from tests.integration.conftest import ROOT, build_iris_artifact

README = ROOT / "README.md"
BIN = Path(sys.executable).parent


def block(language: str, after: str = "### Calling the model", doc: Path = README) -> str:
    """The first fenced block of `language` after the heading `after` in `doc`."""
    text = doc.read_text(encoding="utf-8")
    start = text.index(after)
    found = re.search(rf"```{language}\n(.*?)```", text[start:], re.S)
    assert found, f"README.md has no ```{language} block after {after!r}"
    return found[1]


@dataclass
class Served:
    home: Path
    url: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """iris 1.0.0 served with auth on (the home's own secret, as `legion-ci token create` reads it), routed."""
    home = tmp_path_factory.mktemp("readme-home")
    settings = load_settings(str(home), f"sqlite:///{home / 'registry.db'}")
    registry = Registry.from_settings(settings)
    folder = build_iris_artifact(tmp_path_factory.mktemp("readme-artifact") / "iris")
    version = registry.register_version(Artifact.open(folder).manifest, str(folder))[0]
    registry.set_alias("iris", "production", version.id)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LEGION_")},
        "LEGION_HOME": str(home),
        "LEGION_REGISTRY_URL": settings.registry_url,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    endpoint = spawn(["serve", str(folder), "--port", "0"], home / "server.log", {"LEGION_HOME": str(home)})
    old_port = os.environ.pop(local_router.ENV_PORT, None)
    try:
        wait_ready(endpoint)
        registry.add_deployment("iris", version.id, "local", 100, [endpoint], {"version": "1.0.0"})
        info, _ = local_router.ensure(settings, port=0)
        env["IRIS_URL"] = info.url
        yield Served(home, info.url, env)
    finally:
        local_router.stop(settings)
        stop_pid(int(endpoint["pid"]))
        registry.close()
        if old_port is not None:
            os.environ[local_router.ENV_PORT] = old_port


def test_the_readme_curl_examples_answer_as_shown(served: Served) -> None:
    assert shutil.which("curl"), "curl is needed to run the README's example"
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block("sh")],
        env=served.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    answers, text, decoder = [], done.stdout.strip(), json.JSONDecoder()
    while text:  # curl prints the answers back to back
        answer, end = decoder.raw_decode(text)
        answers.append(answer)
        text = text[end:].strip()
    assert answers[0] == {"model": "iris", "version": "1.0.0", "predictions": [0]}
    assert answers[1]["id"] == "order-1235" and answers[1]["outputs"][0]["data"] == [2]
    assert answers[2] == {"request_id": "order-1234", "matched": True}


def test_the_readme_python_example_runs_against_a_served_model(served: Served, tmp_path: Path) -> None:
    token = subprocess.run(
        [str(BIN / "legion-ci"), "token", "create", "--model", "iris", "--ttl", "10m"],
        env=served.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert token.returncode == 0, token.stderr
    script = tmp_path / "client.py"
    script.write_text(block("python"))
    done = subprocess.run(
        [sys.executable, str(script)],
        env={**served.env, "IRIS_TOKEN": token.stdout.strip()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "{'model': 'iris', 'version': '1.0.0', 'predictions': [0, 2]}"
    assert lines[1] == "[0]"
    assert lines[2].endswith("'matched': True}")


def test_the_spec_docs_recipe_loads_the_production_model_with_its_checks(served: Served, tmp_path: Path) -> None:
    script = tmp_path / "load.py"
    script.write_text(block("python", "To use a registered model in a notebook", ROOT / "docs" / "spec.md"))
    assert "open_version" in script.read_text() and ".model" in script.read_text()
    done = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", str(script)],  # named columns: no feature-name warning
        env=served.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"1\.0\.0 \[[0-2]( [0-2]){4}\]\n", done.stdout), done.stdout
