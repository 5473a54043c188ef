"""The artifact store: where trained artifacts live, addressed by URL (LEGION_STORE_URL).

Default: the folder $LEGION_HOME itself, laid out exactly as before (`artifacts/<name>/<artifact_id>/`),
and the registry keeps recording a plain local path. Any other URL goes through fsspec; `s3://bucket/prefix`
(s3fs) is the tested remote, with endpoint and credentials from the standard AWS environment variables and
config files (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ~/.aws/config, ...): nothing legion-specific.

An artifact in the store is content-addressed: `<store>/artifacts/<name>/<artifact_id>/`, every file's
sha256 in `checksums.json`, and `manifest.json` uploaded last as the commit marker (no manifest: not
committed, e.g. a half-finished upload). The registry records the artifact's URI. A reader fetches a
remote artifact into `$LEGION_HOME/cache/artifacts/<name>/<artifact_id>/` and checks every file against
the checksums before use; a second fetch is a cache hit. A local artifact is checked in place.

Run outputs (reports, and the files a later stage reads from an earlier one) are kept under
`<store>/runs/<run_id>/<stage>/`, so they outlive the workspace that wrote them. On the default store
that is the workspace's own run folder ($LEGION_HOME/runs), where they already are.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from legion_ci.core.artifact import MANIFEST, Artifact, publish, sha256_file, write_json_atomic
from legion_ci.core.errors import ArtifactError, ConfigError
from legion_ci.core.settings import Settings

if TYPE_CHECKING:
    from legion_ci.core.registry import VersionRecord

CHECKSUMS = "checksums.json"
ARTIFACTS = "artifacts"
RUNS = "runs"
CACHE = "cache"


class StoreError(ArtifactError):
    """An artifact in the store is missing, not committed, or fails its checksum; or the store cannot be reached."""


def is_remote(ref: str) -> bool:
    """True for a URL with a scheme other than file:// (a registry row holding a local path is not)."""
    return "://" in ref and not ref.startswith("file://")


def write_checksums(folder: Path) -> dict[str, str]:
    """Hash every file of an artifact folder (except the manifest and this index) into checksums.json."""
    sums = {
        item.relative_to(folder).as_posix(): sha256_file(item)
        for item in sorted(folder.rglob("*"))
        if item.is_file() and item.name not in (MANIFEST, CHECKSUMS)
    }
    write_json_atomic(folder / CHECKSUMS, sums)
    return sums


def check_files(folder: Path, where: str) -> None:
    """Every file checksums.json lists is present in `folder` with its sha256; `where` names the artifact
    (its URI) in the error. A folder without checksums.json (written before the store existed) is checked
    by its model file only, as before."""
    index = folder / CHECKSUMS
    if index.is_file():
        try:
            sums = json.loads(index.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise StoreError(f"{where}: unreadable {CHECKSUMS}: {exc}") from None
        if not isinstance(sums, dict):
            raise StoreError(f"{where}: {CHECKSUMS} is not an object of file name to sha256")
        for name, expected in sorted(sums.items()):
            file = folder / name
            if not file.is_file():
                raise StoreError(f"{where}: file {name} is missing (listed in {CHECKSUMS}); refusing to use it")
            actual = sha256_file(file)
            if actual != expected:
                raise StoreError(
                    f"{where}: file {name} has sha256 {actual[:12]}…, the artifact says {str(expected)[:12]}…; "
                    "tampered or half-uploaded, refusing to use it"
                )
    try:
        Artifact.open(folder).verify()
    except ArtifactError as exc:
        raise StoreError(f"{where}: {exc}") from None


def manifest_digest(folder: Path) -> str:
    """The digest the registry records of an artifact: "sha256:<hex>" of its manifest.json as published."""
    return "sha256:" + sha256_file(folder / MANIFEST)


def check_manifest(folder: Path, where: str, expected: str | None) -> None:
    """The manifest is the one the registry recorded (None: a row from before digests, not checked). The
    manifest is the commit marker: a swapped one is refused even when every file matches its checksums."""
    if expected is None:
        return
    actual = manifest_digest(folder)
    if actual != expected:
        raise StoreError(
            f"{where}: {MANIFEST} has {actual[:19]}…, the registry recorded {expected[:19]}…; "
            "not the manifest that was registered (replaced after publishing), refusing to use it"
        )


def _segment(value: str, what: str) -> str:
    """A name used as one folder of a store key (a run id, a stage): no separators, no climbing."""
    if not value or "/" in value or "\\" in value or value in (".", ".."):
        raise StoreError(f"{what} {value!r} cannot name a folder in the store (no '/', '\\', '.' or '..')")
    return value


def _filesystem(url: str, what: str = "store URL", **options: Any) -> tuple[Any, str]:
    import fsspec

    try:
        # skip_instance_cache: no stale listings of others' writes
        fs, path = fsspec.core.url_to_fs(url, skip_instance_cache=True, **options)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"{what} {url!r}: {exc} (expected a folder, or s3://BUCKET/PREFIX)") from None
    return fs, str(path)


def filesystem(url: str, **options: Any) -> tuple[Any, str]:
    """The fsspec filesystem and path of a store URL or folder (ConfigError for one fsspec cannot open);
    `options` go to the filesystem (e.g. s3fs's config_kwargs)."""
    return _filesystem(url, "LEGION_STORE_URL", **options)


@dataclass(frozen=True)
class Fetched:
    """A verified local copy of an artifact and whether it came from the cache."""

    artifact: Artifact
    uri: str
    cache_hit: bool


@dataclass(frozen=True)
class Store:
    """The store at `url` (a local folder or an fsspec URL) and this machine's cache under `home`."""

    url: str
    home: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return cls((settings.store_url or str(settings.home)).rstrip("/"), settings.home)

    @property
    def remote(self) -> bool:
        return is_remote(self.url)

    def artifact_uri(self, name: str, aid: str) -> str:
        if not self.remote:
            return str(Path(self.url.removeprefix("file://")) / ARTIFACTS / name / aid)
        return f"{self.url}/{ARTIFACTS}/{name}/{aid}"

    def staging_dir(self, name: str, aid: str) -> Path:
        """A fresh local folder to build an artifact in; on a local store it sits beside its final place,
        so publishing is a rename."""
        parent = Path(self.artifact_uri(name, aid)).parent if not self.remote else self.home / CACHE / ".staging"
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".staging-{aid}-", dir=parent))

    def publish(self, staging: Path) -> Fetched:
        """Put a finished artifact folder into the store: checksums, every file, the manifest last. An
        artifact already committed under the same id wins (same inputs, same artifact). Returns the
        verified local copy (the store's folder, or this machine's cache) and the URI to register."""
        if self.remote:
            _filesystem(self.url, "LEGION_STORE_URL")  # a bad URL is told before anything is written
        art = Artifact.open(staging)
        write_checksums(staging)
        uri = self.artifact_uri(art.name, art.id)
        if not self.remote:
            final = publish(staging, Path(uri).parent.parent).path
            check_files(final, uri)
            return Fetched(Artifact.open(final), uri, cache_hit=False)
        fs, root = _filesystem(uri)
        try:
            if not fs.exists(f"{root}/{MANIFEST}"):
                for item in sorted(staging.rglob("*")):
                    name = item.relative_to(staging).as_posix()
                    if item.is_file() and name != MANIFEST:
                        fs.put_file(str(item), f"{root}/{name}")
                fs.put_file(str(staging / MANIFEST), f"{root}/{MANIFEST}")  # the commit marker, last
        except OSError as exc:
            raise StoreError(f"{uri}: cannot upload the artifact: {exc}") from None
        return self.fetch(uri)

    def fetch(self, ref: str, digest: str | None = None) -> Fetched:
        """The artifact a registry row names (a URI or a local path), verified, as a local folder: every file
        against its checksum, and the manifest against `digest` (the row's manifest_digest) when given."""
        if not is_remote(ref):
            folder = Path(ref.removeprefix("file://"))
            if not (folder / MANIFEST).is_file():
                raise StoreError(f"{ref}: not an artifact (no {MANIFEST})")
            check_manifest(folder, ref, digest)
            check_files(folder, ref)
            return Fetched(Artifact.open(folder), ref, cache_hit=False)
        uri = ref.rstrip("/")
        name, aid = uri.split("/")[-2:]
        cached = self.home / CACHE / ARTIFACTS / name / aid
        if (cached / MANIFEST).is_file():
            try:
                check_manifest(cached, uri, digest)
                check_files(cached, uri)
                return Fetched(Artifact.open(cached), uri, cache_hit=True)
            except StoreError:
                shutil.rmtree(cached, ignore_errors=True)  # a damaged cache entry: fetch it again
        cached.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".fetch-{aid}-", dir=cached.parent))
        try:
            self._download(uri, staging)
            check_manifest(staging, uri, digest)
            check_files(staging, uri)
            try:
                os.rename(staging, cached)
            except OSError:  # another process cached it first
                if not (cached / MANIFEST).is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return Fetched(Artifact.open(cached), uri, cache_hit=False)

    def _download(self, uri: str, dest: Path) -> None:
        fs, root = _filesystem(uri)
        try:
            if not fs.exists(f"{root}/{MANIFEST}"):
                raise StoreError(
                    f"{uri}: not a committed artifact (no {MANIFEST}: missing, or its upload did not finish)"
                )
            fs.get_file(f"{root}/{MANIFEST}", str(dest / MANIFEST))
            if not fs.exists(f"{root}/{CHECKSUMS}"):
                raise StoreError(f"{uri}: no {CHECKSUMS}; refusing an artifact whose files cannot be checked")
            fs.get_file(f"{root}/{CHECKSUMS}", str(dest / CHECKSUMS))
            sums = json.loads((dest / CHECKSUMS).read_text(encoding="utf-8"))
            if not isinstance(sums, dict):
                raise StoreError(f"{uri}: {CHECKSUMS} is not an object of file name to sha256")
            for name in sorted(sums):
                if name.startswith("/") or ".." in Path(name).parts:
                    raise StoreError(f"{uri}: {CHECKSUMS} names {name!r}, outside the artifact")
                if not fs.exists(f"{root}/{name}"):
                    raise StoreError(f"{uri}: object {name} is missing (listed in {CHECKSUMS}); refusing to use it")
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(f"{root}/{name}", str(dest / name))
        except ValueError as exc:
            raise StoreError(f"{uri}: unreadable {CHECKSUMS}: {exc}") from None
        except OSError as exc:
            raise StoreError(f"{uri}: cannot read from the store: {exc}") from None


def open_artifact(settings: Settings, ref: str, digest: str | None = None) -> Artifact:
    """The verified local artifact that a registry row (URI or path) names; `digest` is the row's
    manifest_digest (pass `open_version` a VersionRecord to have both)."""
    return Store.from_settings(settings).fetch(ref, digest).artifact


def open_version(settings: Settings, version: VersionRecord) -> Artifact:
    """The verified local artifact of a registered version: its files and its manifest as registered."""
    return open_artifact(settings, version.path, version.manifest_digest)


@dataclass(frozen=True)
class StoredFile:
    """One run output in the store: the stage that wrote it, its name in the stage's folder, its URI."""

    stage: str
    name: str
    uri: str


class RunOutputs:
    """The run outputs of one store: `<store>/runs/<run_id>/<stage>/<name>`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def uri(self, run_id: str, stage: str | None = None, name: str | None = None) -> str:
        parts = [RUNS, _segment(run_id, "run id")]
        if stage is not None:
            parts.append(_segment(stage, "stage"))
        if name is not None:
            parts.extend(_segment(p, "file name") for p in name.split("/"))
        if not self.store.remote:
            return str(Path(self.store.url.removeprefix("file://")).joinpath(*parts))
        return "/".join([self.store.url, *parts])

    def keep(self, run_id: str, stage: str, files: list[Path]) -> list[StoredFile]:
        """Copy a stage's files (each named by its base name) into the store; a file already in its place
        (the default store is the workspace's run folder) is not copied. Returns what the store holds."""
        kept: list[StoredFile] = []
        for file in files:
            uri = self.uri(run_id, stage, file.name)
            try:
                if not self.store.remote:
                    dest = Path(uri)
                    if dest.resolve() != file.resolve():
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        tmp = dest.with_name(f".{dest.name}.part")
                        shutil.copyfile(file, tmp)
                        os.replace(tmp, dest)
                else:
                    fs, path = _filesystem(uri, "LEGION_STORE_URL")
                    fs.put_file(str(file), path)
            except OSError as exc:
                raise StoreError(f"{uri}: cannot keep {file} in the store: {exc}") from None
            kept.append(StoredFile(stage, file.name, uri))
        return kept

    def fetch(self, run_id: str, stage: str, name: str, dest: Path) -> Path | None:
        """A file an earlier stage kept, as a local file (`dest` when it had to be copied); None when the
        store has no such file."""
        uri = self.uri(run_id, stage, name)
        if not self.store.remote:
            return Path(uri) if Path(uri).is_file() else None
        fs, path = _filesystem(uri)
        try:
            if not fs.exists(path):
                return None
            dest.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(path, str(dest))
        except OSError as exc:
            raise StoreError(f"{uri}: cannot read from the store: {exc}") from None
        return dest

    def list(self, run_id: str) -> list[StoredFile]:
        """Every file the store holds for a run, by stage and name."""
        root = self.uri(run_id)
        found: list[StoredFile] = []
        try:
            if not self.store.remote:
                base = Path(root)
                names = (
                    [p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file()] if base.is_dir() else []
                )
            else:
                fs, path = _filesystem(root)
                names = [str(p)[len(path) + 1 :] for p in fs.find(path)]
        except OSError as exc:
            raise StoreError(f"{root}: cannot list the store: {exc}") from None
        for rel in sorted(names):
            stage, _, name = rel.partition("/")
            if name:
                found.append(StoredFile(stage, name, f"{root}/{rel}" if self.store.remote else str(Path(root) / rel)))
        return found


def _files(uri: str) -> tuple[Any, list[str]]:
    """The filesystem of `uri` (None for a local path) and the files under it."""
    if not is_remote(uri):
        folder = Path(uri.removeprefix("file://"))
        return None, [str(p) for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    fs, path = _filesystem(uri)
    return fs, [str(p) for p in fs.find(path)]


def count_tree(uri: str) -> int:
    """How many files an artifact's or a run's folder in the store holds."""
    try:
        return len(_files(uri)[1])
    except OSError as exc:
        raise StoreError(f"{uri}: cannot list the store: {exc}") from None


def remove_tree(uri: str) -> int:
    """Delete an artifact's or a run's folder in the store (or a local folder a registry row names);
    returns the number of files removed (0 when there was nothing)."""
    try:
        fs, files = _files(uri)
        if fs is None:
            folder = Path(uri.removeprefix("file://"))
            if folder.exists():
                shutil.rmtree(folder)
        elif files:
            fs.rm(files)
        return len(files)
    except OSError as exc:
        raise StoreError(f"{uri}: cannot delete from the store: {exc}") from None
