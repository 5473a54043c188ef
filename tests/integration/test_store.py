"""The artifact store on a local folder and on S3 (the stand-in server): publish, fetch into the cache,
cache hits, and refusal of a tampered, missing or half-uploaded object with the URI in the message."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from legion_ci.core.artifact import Artifact
from legion_ci.core.settings import load_settings
from legion_ci.core.store import CHECKSUMS, Store, StoreError
from tests.s3 import BUCKET, S3Server


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    return s3_server


@pytest.fixture
def staged(iris_artifact: Path, tmp_path: Path) -> Path:
    """A finished artifact folder (the session's iris artifact plus a holdout file), ready to publish."""
    folder = Path(shutil.copytree(iris_artifact, tmp_path / "built"))
    (folder / "holdout.csv").write_text("a,b\n1,2\n")
    return folder


def _store(home: Path, url: str = "") -> Store:
    return Store.from_settings(load_settings(str(home), store_url=url))


def test_local_store_keeps_todays_layout_and_paths(tmp_path: Path, staged: Path) -> None:
    home = tmp_path / "home"
    store = _store(home)
    published = store.publish(staged)
    assert published.uri == str(home.resolve() / "artifacts" / "iris" / "0123456789abcdef")
    assert json.loads((Path(published.uri) / CHECKSUMS).read_text()).keys() == {"holdout.csv", "model.skops"}
    again = store.fetch(published.uri)
    assert again.artifact.path == Path(published.uri)
    assert again.artifact.model is not None


def test_local_store_refuses_a_tampered_file(tmp_path: Path, staged: Path) -> None:
    store = _store(tmp_path / "home")
    uri = store.publish(staged).uri
    (Path(uri) / "holdout.csv").write_text("a,b\n9,9\n")
    with pytest.raises(StoreError, match=rf"{uri}: file holdout.csv has sha256 .* tampered"):
        store.fetch(uri)


def test_s3_round_trip_fetches_into_the_cache_then_hits_it(s3_env: S3Server, tmp_path: Path, staged: Path) -> None:
    url = f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}"
    uri = _store(tmp_path / "agent-a", url).publish(staged).uri
    assert uri == f"{url}/artifacts/iris/0123456789abcdef"
    keys = sorted(
        o["Key"]
        for o in s3_env.client().list_objects_v2(Bucket=BUCKET, Prefix=url[len(f"s3://{BUCKET}/") :])["Contents"]
    )
    assert [k.rsplit("/", 1)[1] for k in keys] == ["checksums.json", "holdout.csv", "manifest.json", "model.skops"]

    agent_b = _store(tmp_path / "agent-b", url)
    first = agent_b.fetch(uri)
    assert not first.cache_hit
    assert first.artifact.path == (tmp_path / "agent-b").resolve() / "cache" / "artifacts" / "iris" / "0123456789abcdef"
    assert first.artifact.model is not None
    second = agent_b.fetch(uri)
    assert second.cache_hit and second.artifact.path == first.artifact.path


def _s3_published(s3_env: S3Server, tmp_path: Path, staged: Path) -> tuple[str, str]:
    prefix = uuid.uuid4().hex[:8]
    uri = _store(tmp_path / "agent-a", f"s3://{BUCKET}/{prefix}").publish(staged).uri
    return uri, f"{prefix}/artifacts/iris/0123456789abcdef"


def test_s3_tampered_object_is_refused_naming_the_uri(s3_env: S3Server, tmp_path: Path, staged: Path) -> None:
    uri, key = _s3_published(s3_env, tmp_path, staged)
    s3_env.client().put_object(Bucket=BUCKET, Key=f"{key}/model.skops", Body=b"not the model")
    with pytest.raises(StoreError, match=rf"^{uri}: file model.skops has sha256 .* tampered or half-uploaded"):
        _store(tmp_path / "agent-b").fetch(uri)
    assert not (tmp_path / "agent-b" / "cache" / "artifacts" / "iris" / "0123456789abcdef").exists()


def test_s3_missing_object_and_uncommitted_artifact_are_refused(s3_env: S3Server, tmp_path: Path, staged: Path) -> None:
    uri, key = _s3_published(s3_env, tmp_path, staged)
    s3_env.client().delete_object(Bucket=BUCKET, Key=f"{key}/holdout.csv")
    with pytest.raises(StoreError, match=rf"^{uri}: object holdout.csv is missing"):
        _store(tmp_path / "agent-b").fetch(uri)
    s3_env.client().delete_object(Bucket=BUCKET, Key=f"{key}/manifest.json")  # as if the upload stopped early
    with pytest.raises(StoreError, match=rf"^{uri}: not a committed artifact"):
        _store(tmp_path / "agent-c").fetch(uri)


def test_a_damaged_cache_entry_is_fetched_again(s3_env: S3Server, tmp_path: Path, staged: Path) -> None:
    uri, _ = _s3_published(s3_env, tmp_path, staged)
    store = _store(tmp_path / "agent-b")
    cached = store.fetch(uri).artifact.path
    (cached / "holdout.csv").write_text("damaged")
    again = store.fetch(uri)
    assert not again.cache_hit
    assert Artifact.open(again.artifact.path).verify().is_file()
    assert (cached / "holdout.csv").read_text() == "a,b\n1,2\n"


def test_publishing_the_same_artifact_twice_keeps_the_first(s3_env: S3Server, tmp_path: Path, staged: Path) -> None:
    url = f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}"
    rebuilt = Path(shutil.copytree(staged, tmp_path / "again"))
    (rebuilt / "holdout.csv").write_text("a,b\n3,4\n")
    first = _store(tmp_path / "a", url).publish(staged)
    second = _store(tmp_path / "b", url).publish(rebuilt)
    assert first.uri == second.uri
    assert (second.artifact.path / "holdout.csv").read_text() == "a,b\n1,2\n"
    assert (_store(tmp_path / "c").fetch(first.uri).artifact.path / "holdout.csv").read_text() == "a,b\n1,2\n"


def _swap_manifest(manifest: bytes) -> bytes:
    """The same manifest with another version string: every file it and checksums.json name still matches."""
    data = json.loads(manifest)
    data["version"] = "6.6.6"
    return json.dumps(data).encode()


def test_s3_a_swapped_manifest_with_matching_files_is_refused(s3_env: S3Server, tmp_path: Path, staged: Path) -> None:
    from legion_ci.core.store import manifest_digest

    uri, key = _s3_published(s3_env, tmp_path, staged)
    registered = manifest_digest(_store(tmp_path / "agent-a").fetch(uri).artifact.path)
    assert _store(tmp_path / "agent-b").fetch(uri, registered).artifact.version != "6.6.6"  # cached, as registered
    client = s3_env.client()
    body = client.get_object(Bucket=BUCKET, Key=f"{key}/manifest.json")["Body"].read()
    client.put_object(Bucket=BUCKET, Key=f"{key}/manifest.json", Body=_swap_manifest(body))

    swapped = _store(tmp_path / "agent-c").fetch(uri)  # without the registry's digest the files all check out
    assert swapped.artifact.version == "6.6.6"
    with pytest.raises(
        StoreError, match=rf"^{uri}: manifest.json has sha256:.*the registry recorded {registered[:19]}"
    ):
        _store(tmp_path / "agent-d").fetch(uri, registered)
    assert not (tmp_path / "agent-d" / "cache" / "artifacts" / "iris" / "0123456789abcdef").exists()
    # a cache that took the swapped manifest (fetched without a digest) is fetched again, and refused
    with pytest.raises(StoreError, match=rf"^{uri}: manifest.json has sha256:"):
        _store(tmp_path / "agent-c").fetch(uri, registered)
    # the copy agent B cached before the swap is still the registered one
    assert _store(tmp_path / "agent-b").fetch(uri, registered).cache_hit


def test_local_a_swapped_manifest_is_refused(tmp_path: Path, staged: Path) -> None:
    from legion_ci.core.store import manifest_digest

    store = _store(tmp_path / "home")
    uri = store.publish(staged).uri
    registered = manifest_digest(Path(uri))
    manifest = Path(uri) / "manifest.json"
    manifest.write_bytes(_swap_manifest(manifest.read_bytes()))
    with pytest.raises(StoreError, match=rf"^{uri}: manifest.json has sha256:.*not the manifest that was registered"):
        store.fetch(uri, registered)
    assert store.fetch(uri).artifact.version == "6.6.6"  # a row from before digests: read as before
