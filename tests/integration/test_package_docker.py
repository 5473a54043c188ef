"""`legion-ci package` for real: examples/iris trained by the train stage, built by the Docker engine on
the locally built base image, pushed to the local registry (scripts/services.sh starts both), its labels
read back from the registry's HTTP API, run as a container that must answer with the artifact's own
predictions, and every pushed layer searched for secrets that were in the environment during the build.

Without a Docker engine or registry these tests fail under CI (CI=true) and skip elsewhere, saying why."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from legion_ci.core.artifact import Artifact
from legion_ci.core.errors import DeployError, StageError
from legion_ci.core.registry import Registry
from legion_ci.core.settings import Settings, load_settings
from legion_ci.package.engine import DockerUnavailable, Engine
from legion_ci.package.wheel import source_tree, tree_hash
from legion_ci.pipeline.progress import PlainReporter
from legion_ci.pipeline.runner import single_stage
from legion_ci.pipeline.stages.base import RunOptions, StageResult
from legion_ci.quality.smoke import check_endpoint

ROOT = Path(__file__).resolve().parents[2]
IRIS = ROOT / "examples" / "iris"
REGISTRY = os.environ.get("LEGION_IMAGE_REGISTRY") or "127.0.0.1:5000"
BASE_IMAGE = os.environ.get("LEGION_BASE_IMAGE") or "legion-base:bookworm"
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
# Values that are in the environment while the image is built and must be found nowhere in it.
JWT_SECRET = f"jwt-secret-must-not-ship-{secrets.token_hex(8)}"
REGISTRY_PASSWORD = f"registry-password-must-not-ship-{secrets.token_hex(8)}"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or bool(os.environ.get("JENKINS_URL"))


def unavailable(reason: str) -> None:
    """Fail in CI (the services must be there), skip on a developer's machine."""
    if in_ci():
        pytest.fail(
            f"{reason} (CI=true: the docker tests must run; scripts/services.sh start provides both)", pytrace=False
        )
    pytest.skip(f"{reason}; run `bash scripts/services.sh start` (as root) to run the docker tests")


@pytest.fixture(scope="session")
def engine() -> Engine:
    try:
        found = Engine.connect()
    except DockerUnavailable as exc:
        unavailable(str(exc))
    try:
        httpx.get(f"http://{REGISTRY}/v2/", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        unavailable(f"no image registry answers at http://{REGISTRY}/v2/ ({exc})")
    return found


@pytest.fixture(scope="session")
def base_image(engine: Engine) -> str:
    """The local base image: built by services.sh in the background, waited for here (same lock)."""
    if BASE_IMAGE.startswith("legion-base:"):
        done = subprocess.run(
            ["bash", str(ROOT / "scripts" / "build-base-image.sh")],
            capture_output=True,
            text=True,
            env={**os.environ, "LEGION_BASE_IMAGE": BASE_IMAGE},
            timeout=900,
        )
        if done.returncode != 0:
            pytest.fail(
                f"scripts/build-base-image.sh failed ({done.returncode}):\n{done.stdout}{done.stderr}", pytrace=False
            )
    return BASE_IMAGE


@dataclass
class Trained:
    settings: Settings
    registry: Registry
    run_id: str

    @property
    def version_id(self) -> int:
        return int(self.registry.stages(self.run_id)["train"].outputs["version_id"])

    @property
    def artifact(self) -> Artifact:
        return Artifact.open(self.registry.version_by_id(self.version_id).path)

    def stage(self, name: str, **options: Any) -> StageResult:
        """Run one stage as its own process would: with the settings of the environment it starts in."""
        settings = load_settings(self.settings.home, self.settings.registry_url)
        return single_stage(
            settings, self.registry, name, None, self.run_id, "push", RunOptions(**options), PlainReporter()
        )[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """examples/iris trained by the real train stage in a private LEGION_HOME, then through the real gate (the
    runner packages nothing whose gate and perf did not pass; perf is skipped with its reason)."""
    home = tmp_path_factory.mktemp("package-home")
    settings = load_settings(str(home), f"sqlite:///{home / 'registry.db'}")
    registry = Registry.from_settings(settings)
    run_id = "iris-package-test"
    options = RunOptions(skip_perf_reason="iris meets its SLA in tests/integration/test_perf_stage.py")
    for name in ("train", "gate", "perf"):
        single_stage(settings, registry, name, str(IRIS), run_id, "push", options, PlainReporter())
    yield Trained(settings, registry, run_id)
    registry.close()


def build_env(mp: pytest.MonkeyPatch, base: str) -> None:
    """What the package stage reads, plus secrets a careless build would bake into the image."""
    mp.setenv("LEGION_IMAGE_REGISTRY", REGISTRY)
    mp.setenv("LEGION_BASE_IMAGE", base)
    mp.setenv("LEGION_JWT_SECRET", JWT_SECRET)
    mp.setenv("LEGION_REGISTRY_USER", "legion-bot")
    mp.setenv("LEGION_REGISTRY_PASSWORD", REGISTRY_PASSWORD)
    for key in ("LEGION_BUILD_CA_BUNDLE", "LEGION_PIP_INDEX_URL", "LEGION_CI_WHEEL", "LEGION_TARGET"):
        mp.delenv(key, raising=False)


@dataclass
class Packaged:
    result: StageResult
    tree: str  # legion-ci's source tree hash when it was built (others may edit it during a local run)
    requirements: str

    @property
    def outputs(self) -> dict[str, Any]:
        return self.result.outputs


@pytest.fixture(scope="module")
def packaged(trained: Trained, engine: Engine, base_image: str) -> Packaged:
    """The package stage run once; secrets lie in the environment and in LEGION_HOME while it builds."""
    tree = tree_hash(source_tree())
    (trained.settings.home / "secrets").mkdir(exist_ok=True)
    (trained.settings.home / "secrets" / "jwt-hs256.key").write_text(JWT_SECRET)
    (trained.artifact.path / ".env").write_text(f"LEGION_JWT_SECRET={JWT_SECRET}\n")  # beside the model
    with pytest.MonkeyPatch.context() as mp:
        build_env(mp, base_image)
        result = trained.stage("package")
    requirements = (trained.settings.runs_dir / trained.run_id / "package" / "requirements.txt").read_text()
    return Packaged(result, tree, requirements)


def manifest(reference: str) -> tuple[dict[str, Any], str]:
    """(manifest, digest) of REPOSITORY:TAG from the registry's HTTP API."""
    repository, tag = reference.split("/", 1)[1].rsplit(":", 1)
    answer = httpx.get(
        f"http://{REGISTRY}/v2/{repository}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES}, timeout=30
    )
    answer.raise_for_status()
    return answer.json(), answer.headers["Docker-Content-Digest"]


def blob(repository: str, digest: str) -> bytes:
    answer = httpx.get(f"http://{REGISTRY}/v2/{repository}/blobs/{digest}", timeout=60, follow_redirects=True)
    answer.raise_for_status()
    return answer.content


def image_config(reference: str) -> dict[str, Any]:
    found, _ = manifest(reference)
    repository = reference.split("/", 1)[1].rsplit(":", 1)[0]
    return json.loads(blob(repository, found["config"]["digest"]))


# -- docker: build, push, read back, run ----------------------------------------------------------
@pytest.mark.docker
def test_push_records_the_digest_the_registry_serves(trained: Trained, packaged: Packaged) -> None:
    out = packaged.outputs
    art = trained.artifact
    assert packaged.result.status == "passed"
    assert out["image"] == f"{REGISTRY}/legion/iris:{art.version}-{art.id[:8]}"
    assert out["references"] == [f"{REGISTRY}/legion/iris:{art.version}", out["image"]]
    version = trained.registry.version_by_id(trained.version_id)
    assert (version.image, version.image_digest) == (out["image"], out["digest"])
    for reference in out["references"]:
        found, digest = manifest(reference)
        assert digest == out["digest"], reference
        assert found["mediaType"] in MANIFEST_TYPES
    assert out["pinned"] == f"{REGISTRY}/legion/iris@{out['digest']}"


@pytest.mark.docker
def test_labels_read_back_from_the_registry(trained: Trained, packaged: Packaged, base_image: str) -> None:
    art = trained.artifact
    config = image_config(packaged.outputs["image"])
    labels = config["config"]["Labels"]
    commit = art.manifest.git.commit
    assert labels["org.opencontainers.image.title"] == "iris"
    assert labels["org.opencontainers.image.version"] == art.version
    assert labels["org.opencontainers.image.created"] == art.manifest.created_at
    assert labels["org.opencontainers.image.revision"] == commit
    assert labels["org.opencontainers.image.base.name"] == base_image
    assert labels["ai.legion.model"] == "iris" and labels["ai.legion.version"] == art.version
    assert labels["ai.legion.artifact-id"] == art.id
    assert labels["ai.legion.git-commit"] == commit
    assert labels["ai.legion.data-fingerprint"] == art.manifest.data.fingerprint
    assert json.loads(labels["ai.legion.metrics"]) == art.metrics
    image = config["config"]
    assert image["User"] == "10001:10001"
    assert "8080/tcp" in image["ExposedPorts"]
    assert "LEGION_HOME=/var/lib/legion" in image["Env"]
    assert any("/health/ready" in part for part in image["Healthcheck"]["Test"])
    assert image["Cmd"] == ["legion-ci", "serve", "/opt/legion/model", "--host", "0.0.0.0", "--port", "8080"]


@pytest.mark.docker
def test_container_answers_with_the_artifacts_predictions(trained: Trained, packaged: Packaged, engine: Engine) -> None:
    from legion_ci.core.processes import free_port

    art = trained.artifact
    port = free_port()
    container = engine.client.containers.run(
        packaged.outputs["pinned"],
        detach=True,
        ports={"8080/tcp": ("127.0.0.1", port)},
        environment={"LEGION_AUTH": "off"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            container.reload()
            assert container.status in ("created", "running"), container.logs().decode(errors="replace")
            try:
                if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "not ready in 120 s:\n" + container.logs().decode(errors="replace")
            time.sleep(0.5)
        assert check_endpoint(url, art, {}) == []
        answer = httpx.post(
            f"{url}/api/model/iris/{art.version}/invoke", json={"instances": art.schema.example}, timeout=10
        ).json()
        assert answer["predictions"] == art.schema.example_predictions
        assert (answer["model"], answer["version"]) == ("iris", art.version)
        uid = container.exec_run(["python", "-c", "import os; print(os.getuid(), os.getgid())"])
        assert uid.output.decode().split() == ["10001", "10001"]
        listing = container.exec_run(["python", "-c", "import os; print(sorted(os.listdir('/opt/legion/model')))"])
        assert listing.output.decode().strip() == repr(sorted(["manifest.json", art.manifest.model.file]))
        while time.monotonic() < deadline:  # Docker's own HEALTHCHECK, every 10 s
            container.reload()
            if container.attrs["State"].get("Health", {}).get("Status") == "healthy":
                break
            time.sleep(1)
        assert container.attrs["State"]["Health"]["Status"] == "healthy", container.attrs["State"]["Health"]
    finally:
        container.remove(force=True)


@pytest.mark.docker
def test_no_secret_in_any_layer_label_env_or_history(packaged: Packaged) -> None:
    needles = [JWT_SECRET.encode(), REGISTRY_PASSWORD.encode()]
    reference = packaged.outputs["image"]
    repository = reference.split("/", 1)[1].rsplit(":", 1)[0]
    found, _ = manifest(reference)
    config = blob(repository, found["config"]["digest"])
    assert not [n for n in needles if n in config], "a secret is in the image config (labels, env or history)"
    names: list[str] = []
    for layer in found["layers"]:
        with httpx.stream(
            "GET", f"http://{REGISTRY}/v2/{repository}/blobs/{layer['digest']}", timeout=120, follow_redirects=True
        ) as answer:
            answer.raise_for_status()
            with tarfile.open(fileobj=_Reader(answer.iter_bytes()), mode="r|gz") as tar:  # type: ignore[call-overload]
                for member in tar:
                    names.append(member.name)
                    assert not [n for n in needles if n in member.name.encode()]
                    data = tar.extractfile(member) if member.isfile() else None
                    if data is not None:
                        assert not [n for n in needles if n in data.read()], f"a secret is in {member.name}"
    model_files = sorted(n for n in names if n.startswith("opt/legion/model/") and not n.endswith("/"))
    assert model_files == ["opt/legion/model/manifest.json", "opt/legion/model/model.skops"]
    assert not [n for n in names if n.endswith(("/.env", "jwt-hs256.key", "holdout.csv", "ca.pem", "pip.conf"))]


@pytest.mark.docker
def test_rerun_reuses_the_dependency_layers(trained: Trained, packaged: Packaged, base_image: str) -> None:
    """A rerun builds from the layer cache: the same image when nothing changed, and the same dependency
    layer whenever requirements.txt is the same (a local run may see the tree edited meanwhile)."""
    with pytest.MonkeyPatch.context() as mp:
        build_env(mp, base_image)
        again = trained.stage("package")
    requirements = (trained.settings.runs_dir / trained.run_id / "package" / "requirements.txt").read_text()
    first, _ = manifest(packaged.outputs["image"])
    second, _ = manifest(again.outputs["image"])
    assert first["layers"][0] == second["layers"][0]  # the base
    if requirements == packaged.requirements:  # the venv, requirements.txt and the dependencies too
        assert first["layers"][:4] == second["layers"][:4]
    if tree_hash(source_tree()) == packaged.tree and requirements == packaged.requirements:
        assert again.outputs["digest"] == packaged.outputs["digest"]
    assert trained.registry.version_by_id(trained.version_id).image_digest == again.outputs["digest"]


@pytest.mark.docker
def test_label_values_survive_the_engine(engine: Engine, base_image: str) -> None:
    """dockerfile_string's escaping, checked by the engine itself: what LABEL stores is what we meant."""
    from legion_ci.package.context import BuildContext
    from legion_ci.package.dockerfile import dockerfile_string

    values = {"quotes": 'say "hi"', "dollar": "$HOME ${PATH}", "backslash": "a\\b\\", "json": '{"a":1.5,"b c":"$x"}'}
    dockerfile = f"FROM {base_image}\nLABEL " + " ".join(f"t.{k}={dockerfile_string(v)}" for k, v in values.items())
    context = BuildContext({"Dockerfile": dockerfile.encode()})
    tag = f"legion-test/labels:{secrets.token_hex(4)}"
    with context.tar() as tar:
        image_id = engine.build(tar, tag, lambda line: None)
    try:
        labels = engine.client.images.get(image_id).labels
        assert {k: labels[f"t.{k}"] for k in values} == values
    finally:
        engine.client.images.remove(tag, force=True)


# -- no docker needed: the skip rule and the clear failures ----------------------------------------
def test_local_target_without_registry_skips_and_says_so(trained: Trained, monkeypatch: pytest.MonkeyPatch) -> None:
    from legion_ci.cli import main

    monkeypatch.delenv("LEGION_IMAGE_REGISTRY", raising=False)
    monkeypatch.delenv("LEGION_TARGET", raising=False)
    code = main(
        [
            "package",
            "--run-id",
            trained.run_id,
            "--home",
            str(trained.settings.home),
            "--registry-url",
            trained.settings.registry_url,
        ]
    )
    record = trained.registry.stages(trained.run_id)["package"]
    assert code == 0
    assert record.status == "skipped"
    assert "target is local and no image registry is configured" in record.summary


def test_registry_without_docker_fails_naming_the_engine(
    trained: Trained, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    socket = tmp_path / "no-docker.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket}")
    monkeypatch.setenv("LEGION_IMAGE_REGISTRY", REGISTRY)
    with pytest.raises(DeployError) as info:
        trained.stage("package")
    assert f"unix://{socket}" in str(info.value) and "DOCKER_HOST" in str(info.value)
    record = trained.registry.stages(trained.run_id)["package"]
    assert record.status == "error" and "cannot reach the Docker engine" in record.summary


def test_kubernetes_target_needs_a_registry(trained: Trained, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEGION_IMAGE_REGISTRY", raising=False)
    with pytest.raises(StageError, match="target 'kubernetes' pulls images from a registry: set LEGION_IMAGE_REGISTRY"):
        trained.stage("package", target="kubernetes")


class _Reader:
    """A file-like view of an iterator of byte chunks (for tarfile's streaming mode)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.buffer = chunks, b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.buffer += chunk
        if size < 0:
            size = len(self.buffer)
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data
