"""What an image says about itself: its tags and its OCI and legion labels, all from the artifact."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from legion_ci import __version__
from legion_ci.core.artifact import Artifact

TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class ImageName:
    """REPOSITORY:TAG references of one artifact's image."""

    repository: str  # e.g. 127.0.0.1:5000/legion/iris
    tags: tuple[str, ...]  # VERSION, VERSION-ARTIFACTID8 (unique per artifact), then any extra tags

    @property
    def unique(self) -> str:
        return f"{self.repository}:{self.tags[1]}"

    @property
    def references(self) -> list[str]:
        return [f"{self.repository}:{t}" for t in self.tags]


def image_name(art: Artifact, registry: str | None, namespace: str, extra_tags: tuple[str, ...] = ()) -> ImageName:
    """REGISTRY/NAMESPACE/NAME with tags VERSION and VERSION-ARTIFACTID8 ('+' of a SemVer becomes '_')."""
    version = TAG_UNSAFE.sub("_", art.version)
    repository = "/".join(p for p in (registry, namespace, art.name) if p)
    tags = (version, f"{version}-{art.id[:8]}")
    return ImageName(repository, tags + tuple(t for t in extra_tags if t not in tags))


def public_url(url: str | None) -> str | None:
    """The URL without user or password (a clone URL may carry a token); scp-style git URLs pass through."""
    if not url:
        return None
    url = url.strip()
    parts = urlsplit(url)
    if not parts.scheme or parts.hostname is None:
        return url.split("@", 1)[-1] if "://" not in url else None
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def git_remote(folder: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "config", "--get", "remote.origin.url"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def labels(art: Artifact, base_image: str, source_url: str | None, legion_version: str = __version__) -> dict[str, str]:
    """OCI annotations (org.opencontainers.image.*) and the artifact's lineage (ai.legion.*).

    `created` is the artifact's creation time, not the build's: rebuilding the same artifact gives the
    same image, and so the same digest."""
    manifest = art.manifest
    git = manifest.git
    commit = git.commit or ""
    found: dict[str, str | None] = {
        "org.opencontainers.image.title": art.name,
        "org.opencontainers.image.description": f"legion-ci model server for {art.name} {art.version}",
        "org.opencontainers.image.version": art.version,
        "org.opencontainers.image.created": manifest.created_at or "",
        "org.opencontainers.image.revision": commit,
        "org.opencontainers.image.source": public_url(source_url),
        "org.opencontainers.image.base.name": base_image,
        "ai.legion.model": art.name,
        "ai.legion.version": art.version,
        "ai.legion.artifact-id": art.id,
        "ai.legion.git-commit": commit,
        "ai.legion.git-dirty": "" if git.dirty is None else str(git.dirty).lower(),
        "ai.legion.data-fingerprint": manifest.data.fingerprint or "",
        "ai.legion.metrics": json.dumps(art.metrics, sort_keys=True, separators=(",", ":")),
        "ai.legion.build-url": public_url(manifest.jenkins.build_url if manifest.jenkins else None),
        "ai.legion.legion-ci-version": legion_version,
    }
    return {k: v for k, v in found.items() if v}
