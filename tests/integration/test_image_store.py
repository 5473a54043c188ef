"""`legion-ci image build` and the Kubernetes inventory take the artifact from the store, as the stages do:
on a fresh LEGION_HOME the image's build context is made of the copy fetched into this home's cache and
checked by sha256, never of a folder another agent recorded; a tampered object stops the build (exit 2)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from legion_ci.core.settings import load_settings
from legion_ci.core.store import Store, open_artifact
from legion_ci.package.build import prepare
from legion_ci.package.options import PackageOptions
from tests.s3 import BUCKET, S3Server

AID = "0123456789abcdef"


@pytest.fixture
def published(s3_server: S3Server, iris_artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The session's iris artifact, published to a fresh S3 prefix by agent A, whose home is then deleted."""
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("LEGION_STORE_URL", raising=False)
    staged = Path(shutil.copytree(iris_artifact, tmp_path / "built"))
    url = f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}"
    uri = Store(url, tmp_path / "agent-a").publish(staged).uri
    shutil.rmtree(tmp_path / "agent-a")
    shutil.rmtree(staged)
    return uri


def _image_build(home: Path, uri: str, s3: S3Server) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEGION_", "DOCKER_"))}
    env.update({**s3.env, "LEGION_HOME": str(home), "DOCKER_HOST": f"unix://{home}/no-docker.sock"})
    return subprocess.run(
        [sys.executable, "-m", "legion_ci", "image", "build", uri, "--store", uri.split("/artifacts/")[0]],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_the_build_context_is_made_of_the_stores_checked_copy(published: str, tmp_path: Path) -> None:
    home = tmp_path / "agent-b"  # fresh: nothing of agent A's
    settings = load_settings(str(home), store_url=published.split("/artifacts/")[0])
    art = open_artifact(settings, published)
    cached = home.resolve() / "cache" / "artifacts" / "iris" / AID
    assert art.path == cached
    wheel = tmp_path / "legion_ci-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:  # prepare reads only its requirements; the engine installs it
        zf.writestr("legion_ci-0.dist-info/METADATA", "Metadata-Version: 2.1\nName: legion-ci\nVersion: 0\n")
    options = replace(PackageOptions.from_settings(settings), wheel=wheel)
    _, _, context = prepare(art, options, home / "cache")
    model = {name: source for name, source in context.files.items() if name.startswith("model/")}
    assert model == {"model/manifest.json": cached / "manifest.json", "model/model.skops": cached / "model.skops"}


def test_image_build_fetches_a_store_uri_into_a_fresh_home(published: str, s3_server: S3Server, tmp_path: Path) -> None:
    """Without a Docker engine the build stops at the engine: after the artifact was fetched and checked."""
    home = tmp_path / "agent-b"
    done = _image_build(home, published, s3_server)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "docker" in done.stderr.lower()
    assert (home / "cache" / "artifacts" / "iris" / AID / "model.skops").is_file()


def test_image_build_refuses_a_tampered_object_naming_the_uri(
    published: str, s3_server: S3Server, tmp_path: Path
) -> None:
    key = published.removeprefix(f"s3://{BUCKET}/")
    s3_server.client().put_object(Bucket=BUCKET, Key=f"{key}/model.skops", Body=b"not the model")
    home = tmp_path / "agent-b"
    done = _image_build(home, published, s3_server)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {published}: file model.skops has sha256 ")
    assert "tampered or half-uploaded" in done.stderr
    assert not (home / "cache" / "artifacts" / "iris" / AID).exists()


def test_image_build_refuses_a_folder_another_agent_recorded(
    published: str, s3_server: S3Server, tmp_path: Path
) -> None:
    elsewhere = str(tmp_path / "agent-a" / "artifacts" / "iris" / AID)  # agent A's home is gone
    done = _image_build(tmp_path / "agent-b", elsewhere, s3_server)
    assert done.returncode == 2
    assert done.stderr == f"error: {elsewhere}: not an artifact (no manifest.json)\n"


def test_the_kubernetes_inventory_carries_no_folder_of_another_agent(tmp_path: Path) -> None:
    """The pods run the image (built from the store's checked copy); the inventory names the artifact by id
    and the image digest, and no path the registry row recorded on the agent that trained it."""
    import yaml

    from legion_ci.core.registry import VersionRecord
    from legion_ci.core.spec import load_spec
    from legion_ci.deploy import inventory
    from tests.manifests import stub_manifest

    settings = load_settings(str(tmp_path / "agent-b"), store_url=f"s3://{BUCKET}/p")
    recorded = "/home/agent-a/workspace/.legion/artifacts/iris/" + AID
    version = VersionRecord(
        1, "iris", "1.0.0", AID, recorded, stub_manifest("iris", "1.0.0", AID), "reg:5000/legion/iris:1.0.0",
        "sha256:" + "a" * 64, "2026-12-01T00:00:00Z",
    )  # fmt: skip
    spec = load_spec(Path(__file__).resolve().parents[2] / "examples" / "iris").spec
    variables = inventory.deploy_vars(settings, spec, version, 20, "kubernetes")
    assert "agent-a" not in yaml.safe_dump(variables)
    assert variables["legion_artifact_id"] == AID
    assert variables["legion_image_digest"] == "sha256:" + "a" * 64


def _register_then_swap(published: str, s3_server: S3Server, home: Path) -> None:
    """Agent B's registry records the artifact (with its manifest digest); then the store's manifest is
    replaced by one naming the same, unchanged files; agent B's cache is empty."""
    import json

    from legion_ci.core.registry import Registry
    from legion_ci.core.store import manifest_digest

    settings = load_settings(str(home), store_url=published.split("/artifacts/")[0])
    art = open_artifact(settings, published)
    registry = Registry.from_settings(settings)
    registry.register_version(art.manifest, published, manifest_digest(art.path))
    assert registry.registered_digest(published) == manifest_digest(art.path)
    assert registry.registered_digest(published + "0") is None  # an artifact id no row has
    registry.close()
    shutil.rmtree(home / "cache")
    key = f"{published.removeprefix(f's3://{BUCKET}/')}/manifest.json"
    client = s3_server.client()
    swapped = json.loads(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    swapped["version"] = "6.6.6"
    client.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(swapped).encode())


@pytest.mark.parametrize("command", ["image build", "serve"])
def test_a_manifest_the_registry_did_not_record_is_refused(
    published: str, s3_server: S3Server, tmp_path: Path, command: str
) -> None:
    home = tmp_path / "agent-b"
    _register_then_swap(published, s3_server, home)
    if command == "serve":
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEGION_")}
        env.update({**s3_server.env, "LEGION_HOME": str(home)})
        store = published.split("/artifacts/")[0]
        argv = ["serve", published, "--port", "0", "--no-auth", "--store", store]
        done = subprocess.run(
            [sys.executable, "-m", "legion_ci", *argv], capture_output=True, text=True, env=env, timeout=120
        )
    else:
        done = _image_build(home, published, s3_server)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith(f"error: {published}: manifest.json has sha256:")
    assert "not the manifest that was registered" in done.stderr
