"""Packaging without an engine: the rendered Dockerfile (fixture pairs tests/fixtures/dockerfile-*/input ->
expected), label escaping, tags, options, the skip rule, the build context's allowlist, the requirements
and the serve path's imports. Regenerate the expected files after an intended change with
LEGION_UPDATE_FIXTURES=1."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from legion_ci.core.artifact import Artifact
from legion_ci.core.errors import ArtifactError, ConfigError
from legion_ci.core.manifest import Manifest
from legion_ci.core.settings import load_settings
from legion_ci.package import metadata
from legion_ci.package.context import assemble
from legion_ci.package.dockerfile import DockerfileInputs, dockerfile_string, render
from legion_ci.package.engine import DockerUnavailable, Engine
from legion_ci.package.options import PackageOptions, registry_auth
from legion_ci.package.requirements import PIPELINE_ONLY, requirements
from legion_ci.pipeline.stages.package import skip_reason
from tests.manifests import stub_manifest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
CASES = sorted(p.name for p in FIXTURES.glob("dockerfile-*") if p.is_dir())
SECRET = "s3cr3t-value-that-must-stay-out"


def rendered(case: str) -> str:
    data = yaml.safe_load((FIXTURES / case / "input").read_text())
    art = Artifact(Path("/nonexistent"), Manifest.parse(data["manifest"], case))
    opts = data["options"]
    return render(
        DockerfileInputs(
            name=art.name,
            version=art.version,
            artifact_id=art.id,
            base_image=opts["base_image"],
            wheel=data["wheel"],
            labels=metadata.labels(art, opts["base_image"], opts["source_url"], data["legion_ci_version"]),
            ca_bundle=opts["ca_bundle"],
            pip_conf=opts["pip_conf"],
        )
    )


def test_there_are_fixture_cases() -> None:
    assert {"dockerfile-minimal", "dockerfile-full", "dockerfile-pip-mirror"} <= set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_fixture_pair(case: str) -> None:
    text = rendered(case)
    expected = FIXTURES / case / "expected"
    if os.environ.get("LEGION_UPDATE_FIXTURES") == "1":
        expected.write_text(text)
    assert text == expected.read_text(), (
        f"rendering {case} differs from tests/fixtures/{case}/expected (LEGION_UPDATE_FIXTURES=1 regenerates it)"
    )


@pytest.mark.parametrize("case", CASES)
def test_every_image_is_non_root_with_healthcheck_and_serve_command(case: str) -> None:
    text = rendered(case)
    assert "\nUSER 10001:10001\n" in text
    assert "HEALTHCHECK" in text and "/health/ready" in text
    assert "\nEXPOSE 8080\n" in text and "LEGION_HOME=/var/lib/legion" in text
    assert 'CMD ["legion-ci", "serve", "/opt/legion/model", "--host", "0.0.0.0", "--port", "8080"]' in text
    # dependencies are installed (and cached) before legion-ci and the model, which change more often
    assert (
        text.index("--requirement /opt/legion/requirements.txt")
        < text.index("COPY wheels/")
        < text.index("COPY model/")
    )


def test_build_only_settings_stay_in_the_deps_stage() -> None:
    text = rendered("dockerfile-full")
    final = text.split("\nFROM registry.example.com/base/python:3.11-slim\n", 1)[1]
    assert "COPY build/ca.pem" in text and "COPY build/pip.conf" in text
    assert "build/" not in final and "PIP_CERT" not in final and "PIP_CONFIG_FILE" not in final
    assert "COPY --from=deps /opt/legion/venv /opt/legion/venv" in final
    assert "FROM deps\n" in rendered("dockerfile-minimal")  # nothing build-only: one stage, no copy


def test_source_url_loses_its_credentials() -> None:
    text = rendered("dockerfile-full")
    assert "s3cr3t-token" not in text and "ci-bot" not in text
    assert 'org.opencontainers.image.source="https://git.example.com/ml/churn.git"' in text


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("https://user:token@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("https://github.com:8443/org/repo?x=1#frag", "https://github.com:8443/org/repo"),
        ("git@github.com:org/repo.git", "github.com:org/repo.git"),
        ("file:///srv/git/repo", None),
        ("", None),
        (None, None),
    ],
)
def test_public_url(url: str | None, public: str | None) -> None:
    assert metadata.public_url(url) == public


@pytest.mark.parametrize(
    ("value", "word"),
    [
        ("plain", '"plain"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("$HOME and ${X}", '"\\$HOME and \\${X}"'),
        ("back\\slash", '"back\\\\slash"'),
        ("two\nlines", '"two lines"'),
    ],
)
def test_dockerfile_string_escapes(value: str, word: str) -> None:
    assert dockerfile_string(value) == word


def test_labels_carry_the_lineage() -> None:
    data = yaml.safe_load((FIXTURES / "dockerfile-full" / "input").read_text())
    art = Artifact(Path("/nonexistent"), Manifest.parse(data["manifest"], "dockerfile-full"))
    found = metadata.labels(art, "python:3.11-slim", None, "9.9.9")
    assert found["ai.legion.model"] == "churn" and found["ai.legion.version"] == "2.1.0+build.7"
    assert found["ai.legion.artifact-id"] == "8f3e2a91c4b7d605"
    commit = data["manifest"]["git"]["commit"]
    assert found["ai.legion.git-commit"] == found["org.opencontainers.image.revision"] == commit
    assert found["ai.legion.data-fingerprint"] == data["manifest"]["data"]["fingerprint"]
    assert json.loads(found["ai.legion.metrics"]) == data["manifest"]["metrics"]
    assert found["org.opencontainers.image.created"] == data["manifest"]["created_at"]
    assert "org.opencontainers.image.source" not in found  # unknown: left out, not made up


def test_image_name_tags_version_and_artifact() -> None:
    art = Artifact(Path("/x"), stub_manifest("churn", "2.1.0+build.7", "8f3e2a91c4b7d605"))
    name = metadata.image_name(art, "127.0.0.1:5000", "legion")
    assert name.repository == "127.0.0.1:5000/legion/churn"
    assert name.references == [
        "127.0.0.1:5000/legion/churn:2.1.0_build.7",
        "127.0.0.1:5000/legion/churn:2.1.0_build.7-8f3e2a91",
    ]
    assert name.unique == name.references[-1]
    assert metadata.image_name(art, None, "legion").repository == "legion/churn"


# -- the skip rule -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("target", "registry", "skips"),
    [
        ("local", None, True),
        ("local", "", True),
        ("local", "127.0.0.1:5000", False),
        ("kubernetes", None, False),  # fails later, asking for a registry
        ("kubernetes", "registry.example.com/ml", False),
    ],
)
def test_skip_reason(target: str, registry: str | None, skips: bool) -> None:
    reason = skip_reason(target, registry)
    assert (reason is not None) == skips
    if reason:
        assert "skipped" in reason and "LEGION_IMAGE_REGISTRY" in reason


# -- options ---------------------------------------------------------------------------------------------
def _options() -> PackageOptions:
    """Packaging options from the settings read now (a process reads them once, at its start)."""
    return PackageOptions.from_settings(load_settings())


@pytest.mark.parametrize(
    "value",
    ["http://127.0.0.1:5000", "user:pw@registry.example.com", "Registry.Example.com", "registry.example.com/ml//x"],
)
def test_bad_registry_is_refused_naming_the_variable(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGION_IMAGE_REGISTRY", value)
    with pytest.raises(ConfigError, match=r"LEGION_IMAGE_REGISTRY=.*expected host\[:port\]"):
        _options()


def test_registry_trailing_slash_is_forgiven(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGION_IMAGE_REGISTRY", "registry.example.com/ml/")
    assert _options().registry == "registry.example.com/ml"


def test_options_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    for key, value in {
        "LEGION_IMAGE_REGISTRY": "127.0.0.1:5000",
        "LEGION_BASE_IMAGE": "legion-base:bookworm",
        "LEGION_BUILD_CA_BUNDLE": str(ca),
        "PIP_INDEX_URL": "file:///opt/pypi/simple",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("LEGION_PIP_INDEX_URL", raising=False)
    options = _options()
    assert (options.registry, options.base_image, options.ca_bundle) == ("127.0.0.1:5000", "legion-base:bookworm", ca)
    assert options.pip_index_url is None  # a file:// index on this host means nothing inside the build
    monkeypatch.setenv("LEGION_BUILD_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match=r"LEGION_BUILD_CA_BUNDLE.*missing\.pem.*not a file"):
        _options()


def test_registry_auth_needs_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEGION_REGISTRY_USER", raising=False)
    monkeypatch.delenv("LEGION_REGISTRY_PASSWORD", raising=False)
    assert registry_auth(_options()) is None
    monkeypatch.setenv("LEGION_REGISTRY_USER", "bot")
    with pytest.raises(ConfigError, match="LEGION_REGISTRY_PASSWORD is not set"):
        registry_auth(_options())
    monkeypatch.setenv("LEGION_REGISTRY_PASSWORD", SECRET)
    assert registry_auth(_options()) == {"username": "bot", "password": SECRET}


def test_no_engine_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    socket = tmp_path / "nothing-listens-here.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket}")
    with pytest.raises(DockerUnavailable) as info:
        Engine.connect()
    message = str(info.value)
    assert f"unix://{socket}" in message and "DOCKER_HOST" in message and "dockerd" in message


# -- the build context -------------------------------------------------------------------------------
def _artifact(folder: Path, model_file: str = "model.skops") -> Artifact:
    """An artifact folder with neighbours that must not reach an image."""
    folder.mkdir(parents=True)
    (folder / "model.skops").write_bytes(b"model bytes")
    (folder / "holdout.csv").write_text("a,b,target\n1,2,0\n")
    (folder / ".env").write_text(f"LEGION_JWT_SECRET={SECRET}\n")
    (folder / "secrets").mkdir()
    (folder / "secrets" / "jwt-hs256.key").write_text(SECRET)
    manifest: dict[str, Any] = {
        "name": "iris",
        "version": "1.0.0",
        "artifact_id": "0123456789abcdef",
        "schema_version": 2,
        "model": {
            "format": "skops",
            "file": model_file,
            "sha256": hashlib.sha256(b"model bytes").hexdigest(),
            "input_schema": {"features": [{"name": "a"}, {"name": "b"}]},
        },
        "packages": {"python": "3.11.2", "scikit-learn": "0.0.1", "legion-ci": "0.1.0"},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return Artifact.open(folder)


def _wheel(folder: Path, requires: list[str]) -> Path:
    wheel = folder / "legion_ci-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(
            "legion_ci-0.1.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: legion-ci\nVersion: 0.1.0\n"
            + "".join(f"Requires-Dist: {r}\n" for r in requires),
        )
    return wheel


def test_context_holds_only_the_allowlist(tmp_path: Path) -> None:
    art = _artifact(tmp_path / "artifact")
    wheel = _wheel(tmp_path, ["jinja2>=3"])
    context = assemble(art, "FROM scratch\n", "jinja2==3\n", wheel)
    assert context.names() == [
        "Dockerfile",
        "model/manifest.json",
        "model/model.skops",
        "requirements.txt",
        f"wheels/{wheel.name}",
    ]
    with context.tar() as fh, tarfile.open(fileobj=fh) as tar:
        members = tar.getmembers()
        files = sorted(m.name for m in members if m.isfile())
        assert files == context.names()
        assert {m.mtime for m in members} == {0} and {m.uid for m in members} == {0}
        for member in members:
            if member.isfile():
                data = tar.extractfile(member)
                assert data is not None and SECRET.encode() not in data.read(), member.name


def test_context_adds_build_only_files_when_asked(tmp_path: Path) -> None:
    art = _artifact(tmp_path / "artifact")
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    context = assemble(art, "FROM scratch\n", "", _wheel(tmp_path, []), ca, "[global]\nindex-url = https://m/\n")
    assert {"build/ca.pem", "build/pip.conf"} <= set(context.names())


@pytest.mark.parametrize("bad", ["../model.skops", "sub/model.skops", ".."])
def test_model_file_must_be_a_plain_name(tmp_path: Path, bad: str) -> None:
    art = _artifact(tmp_path / "artifact", model_file=bad)
    with pytest.raises(ArtifactError, match="not a plain file name"):
        assemble(art, "FROM scratch\n", "", _wheel(tmp_path, []))


# -- requirements ------------------------------------------------------------------------------------
def test_requirements_pin_the_closure_less_pipeline_tools(tmp_path: Path) -> None:
    from importlib import metadata as md

    art = _artifact(tmp_path / "artifact")
    wheel = _wheel(
        tmp_path,
        [
            "jinja2>=3.1",
            "uvicorn[standard]>=0.29",
            "locust>=2.24",
            "kubernetes>=29",
            'psycopg[binary]>=3.1; extra == "postgres"',
            "not-installed-anywhere>=1.2",
            "scikit-learn>=1.4",
        ],
    )
    lines = [x for x in requirements(art, wheel).splitlines() if not x.startswith("#")]
    assert f"jinja2=={md.version('jinja2')}" in lines
    assert f"markupsafe=={md.version('markupsafe')}" in lines  # followed transitively
    assert f"uvloop=={md.version('uvloop')}" in lines  # through uvicorn's `standard` extra
    assert "not-installed-anywhere>=1.2" in lines  # left to pip
    assert "scikit-learn==0.0.1" in lines  # the artifact's recorded version wins
    names = {x.split("=")[0].split(">")[0] for x in lines}
    assert not names & {"locust", "kubernetes", "psycopg", "legion-ci", "python", "gevent"}


def test_requirements_do_not_name_the_artifact(tmp_path: Path) -> None:
    """Two artifacts with the same packages give the same requirements.txt, so they share the cached
    dependency layer."""
    wheel = _wheel(tmp_path, ["jinja2>=3.1"])
    first = _artifact(tmp_path / "a")
    second_dir = tmp_path / "b"
    _artifact(second_dir)
    manifest = json.loads((second_dir / "manifest.json").read_text())
    manifest.update(artifact_id="fedcba9876543210", version="2.0.0", name="other")
    (second_dir / "manifest.json").write_text(json.dumps(manifest))
    assert requirements(first, wheel) == requirements(Artifact.open(second_dir), wheel)


def test_serve_path_imports_no_pipeline_only_package() -> None:
    """The image leaves PIPELINE_ONLY out, so `legion-ci serve` must not import them."""
    code = (
        "import sys, json\n"
        "from importlib import metadata\n"
        "import legion_ci.cli as cli\n"
        "cli.build_parser()\n"
        "import legion_ci.serving.app, legion_ci.serving.server\n"
        "owners = metadata.packages_distributions()\n"
        "loaded = {d for m in list(sys.modules) for d in owners.get(m.split('.')[0], [])}\n"
        "print(json.dumps(sorted(loaded)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = {name.lower() for name in json.loads(done.stdout.splitlines()[-1])}
    assert not loaded & PIPELINE_ONLY, f"`legion-ci serve` imports {sorted(loaded & PIPELINE_ONLY)}, which images omit"
