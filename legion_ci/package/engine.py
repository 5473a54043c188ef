"""The one wrapper over the Docker engine (the `docker` SDK): connect, build, tag, push.

Builds go through the engine's API with the legacy builder, streaming its output line by line; the
docker CLI is never called. Errors name the engine's address and what to do."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import IO, Any

from legion_ci.core.errors import ConfigError, DeployError, ExternalToolError

CONNECT_TIMEOUT = 15.0
WORK_TIMEOUT = 1800  # a pip step may be silent for minutes; the SDK's 60 s read timeout would cut it off
TAIL = 40

Log = Callable[[str], None]


def engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


class DockerUnavailable(DeployError):
    """No Docker engine answers where we looked."""

    def __init__(self, detail: str) -> None:
        where = engine_address()
        hint = "DOCKER_HOST" if os.environ.get("DOCKER_HOST") else "the socket (DOCKER_HOST is not set)"
        super().__init__(
            f"cannot reach the Docker engine at {where} ({hint}): {detail}. Start dockerd "
            "(`bash scripts/services.sh start` starts one on this machine) or set DOCKER_HOST "
            "to a running engine"
        )


class ImageBuildFailed(ExternalToolError):
    """The engine refused or failed the build (a step exited non-zero, a file was missing)."""


class ImagePushFailed(ExternalToolError):
    """The registry refused the push (unreachable, unauthorized, no such repository)."""


class Engine:
    """A connected Docker engine."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    def connect(cls) -> Engine:
        import docker
        import requests

        try:
            client = docker.from_env(timeout=int(CONNECT_TIMEOUT))
            client.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise DockerUnavailable(_short(exc)) from None
        client.api.timeout = WORK_TIMEOUT
        return cls(client)

    def has_image(self, ref: str) -> bool:
        import docker

        try:
            self.client.images.get(ref)
            return True
        except docker.errors.ImageNotFound:
            return False

    def ensure_image(self, ref: str, log: Log) -> None:
        """Pull `ref` unless the engine already has it; a clear error when it cannot."""
        import docker

        if self.has_image(ref):
            return
        log(f"pulling {ref}")
        try:
            self.client.images.pull(ref)
        except docker.errors.DockerException as exc:
            raise ConfigError(
                f"base image {ref} is not on the Docker engine and cannot be pulled ({_short(exc)}); "
                "set LEGION_BASE_IMAGE to an image the engine has (scripts/build-base-image.sh "
                "builds legion-base:bookworm locally)"
            ) from None

    def build(self, context: IO[bytes], tag: str, log: Log) -> str:
        """Build the context's Dockerfile (legacy builder), streaming each output line to `log`; the image id."""

        def start() -> Iterable[dict[str, Any]]:
            return self.client.api.build(  # type: ignore[no-any-return]
                fileobj=context,
                custom_context=True,
                tag=tag,
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
                timeout=WORK_TIMEOUT,
            )

        tail: list[str] = []
        image_id = None
        for chunk in self._guard(start, "build"):
            if "error" in chunk:
                raise ImageBuildFailed(
                    "docker", f"build {tag} (legacy builder, Docker API)", str(chunk["error"]).strip(), "\n".join(tail)
                )
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = str(chunk["aux"]["ID"])
            for line in str(chunk.get("stream", "")).splitlines():
                if line.strip():
                    log(line.rstrip())
                    tail = [*tail, line.rstrip()][-TAIL:]
        if image_id is None:
            image_id = str(self.client.images.get(tag).id)
        return image_id

    def tag(self, image_id: str, repository: str, tag: str) -> None:
        self.client.api.tag(image_id, repository, tag, force=True)

    def push(self, repository: str, tag: str, auth: dict[str, str] | None, log: Log) -> str:
        """Push REPOSITORY:TAG, logging each layer's state once; the manifest digest the registry stored."""

        def start() -> Iterable[dict[str, Any]]:
            return self.client.api.push(  # type: ignore[no-any-return]
                repository, tag=tag, stream=True, decode=True, auth_config=auth
            )

        digest, said = None, set()
        for chunk in self._guard(start, "push"):
            if "error" in chunk:
                raise ImagePushFailed("docker", f"push {repository}:{tag}", str(chunk["error"]).strip())
            aux = chunk.get("aux") or {}
            if aux.get("Digest"):
                digest = str(aux["Digest"])
            status, layer = chunk.get("status"), chunk.get("id")
            if status and (status, layer) not in said and status not in ("Pushing", "Waiting"):
                said.add((status, layer))
                log(f"{layer}: {status}" if layer else str(status))
        if digest is None:
            raise ImagePushFailed(
                "docker",
                f"push {repository}:{tag}",
                "no digest",
                "the engine finished the push without reporting the manifest digest",
            )
        return digest

    def image_size(self, ref: str) -> int:
        return int(self.client.images.get(ref).attrs.get("Size") or 0)

    def _guard(self, start: Callable[[], Iterable[dict[str, Any]]], what: str) -> Iterable[dict[str, Any]]:
        """The chunks of the stream `start` opens; a lost connection becomes DockerUnavailable, an API
        error ImageBuildFailed / ImagePushFailed."""
        import docker
        import requests

        try:
            yield from start()
        except requests.exceptions.RequestException as exc:
            raise DockerUnavailable(f"connection lost during {what}: {_short(exc)}") from None
        except docker.errors.APIError as exc:
            kind = ImageBuildFailed if what == "build" else ImagePushFailed
            raise kind("docker", what, exc.status_code or "error", _short(exc)) from None


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:400]
