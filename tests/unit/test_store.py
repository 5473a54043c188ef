"""The artifact store's rules that need no server: what counts as remote, the default store, bad URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from legion_ci.core.errors import ConfigError
from legion_ci.core.settings import load_settings
from legion_ci.core.store import Store, StoreError, is_remote


@pytest.mark.parametrize(
    ("ref", "remote"),
    [
        ("/home/ci/.legion/artifacts/iris/abc", False),
        ("file:///srv/store/artifacts/iris/abc", False),
        ("s3://b/p/artifacts/iris/abc", True),
    ],
)
def test_a_registry_row_is_remote_only_with_a_scheme(ref: str, remote: bool) -> None:
    assert is_remote(ref) is remote


def test_the_default_store_is_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEGION_STORE_URL", raising=False)
    store = Store.from_settings(load_settings(str(tmp_path)))
    assert not store.remote
    assert store.artifact_uri("iris", "abc") == str(tmp_path.resolve() / "artifacts" / "iris" / "abc")


def test_the_store_url_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGION_STORE_URL", "s3://bucket/legion/")
    store = Store.from_settings(load_settings(str(tmp_path)))
    assert store.remote and store.artifact_uri("iris", "abc") == "s3://bucket/legion/artifacts/iris/abc"


def test_an_unknown_scheme_is_refused_naming_the_url(tmp_path: Path) -> None:
    store = Store("nosuch://bucket/x", tmp_path)
    with pytest.raises(ConfigError, match=r"'nosuch://bucket/x/artifacts/iris/abc': Protocol not known: nosuch"):
        store.fetch("nosuch://bucket/x/artifacts/iris/abc")


def test_a_folder_without_a_manifest_is_not_an_artifact(tmp_path: Path) -> None:
    (tmp_path / "half").mkdir()
    with pytest.raises(StoreError, match=r"half: not an artifact \(no manifest.json\)"):
        Store(str(tmp_path), tmp_path).fetch(str(tmp_path / "half"))


def test_publishing_to_an_unknown_scheme_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^LEGION_STORE_URL 'nosuch://bucket/x': Protocol not known"):
        Store("nosuch://bucket/x", tmp_path).publish(tmp_path)
