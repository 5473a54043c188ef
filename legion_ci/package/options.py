"""Packaging settings in one place. Precedence: default < environment < arguments."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from legion_ci.core.errors import ConfigError
from legion_ci.core.settings import Settings, env_name

DEFAULT_BASE_IMAGE = "python:3.11-slim"
DEFAULT_NAMESPACE = "legion"
# host[:port][/path]: a registry address as Docker writes it in an image reference (no scheme, no user).
REGISTRY = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
IMAGE_REF = re.compile(r"^[a-z0-9][a-z0-9._/:-]*[a-z0-9](@sha256:[0-9a-f]{64})?$", re.IGNORECASE)

ENV_BASE_IMAGE = env_name("base_image")
ENV_REGISTRY = env_name("image_registry")
ENV_CA_BUNDLE = env_name("build_ca_bundle")
ENV_WHEEL = env_name("ci_wheel")
ENV_USER = env_name("registry_user")
ENV_PASSWORD = env_name("registry_password")  # the variable's name, not a secret


@dataclass(frozen=True)
class PackageOptions:
    """How an artifact becomes an image. The registry password is a SecretStr (masked in every repr) and
    is used at push time only, so it cannot reach a log, a label or a file."""

    base_image: str = DEFAULT_BASE_IMAGE
    registry: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    push: bool = True
    source_url: str | None = None
    ca_bundle: Path | None = None  # PEM file trusted by pip in the build stage only (a TLS-inspecting proxy)
    pip_index_url: str | None = None  # pip's index in the build stage only (a PyPI mirror)
    wheel: Path | None = None  # a prebuilt legion-ci wheel; default: made from the running legion-ci (wheel.py)
    extra_tags: tuple[str, ...] = ()  # besides VERSION and VERSION-ARTIFACTID8, e.g. "latest"
    registry_user: str | None = None
    registry_password: SecretStr | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> PackageOptions:
        """LEGION_BASE_IMAGE, LEGION_IMAGE_REGISTRY, LEGION_SOURCE_URL (else Jenkins' GIT_URL),
        LEGION_BUILD_CA_BUNDLE, LEGION_PIP_INDEX_URL (else PIP_INDEX_URL), LEGION_CI_WHEEL,
        LEGION_REGISTRY_USER/_PASSWORD; then `overrides` (command-line values; None means not given)."""
        index = settings.pip_index_url or os.environ.get("PIP_INDEX_URL") or None
        options = cls(
            base_image=settings.base_image,
            registry=settings.image_registry,
            source_url=settings.source_url or os.environ.get("GIT_URL") or None,
            ca_bundle=settings.build_ca_bundle,
            pip_index_url=index if index and index.startswith(("http://", "https://")) else None,
            wheel=settings.ci_wheel,
            registry_user=settings.registry_user,
            registry_password=settings.registry_password,
        )
        options = replace(options, **{k: v for k, v in overrides.items() if v is not None})
        options.check()
        return options

    def check(self) -> None:
        """Refuse values Docker would refuse later, naming the variable and what is expected."""
        if self.registry is not None and not REGISTRY.match(self.registry):
            raise ConfigError(
                f"{ENV_REGISTRY}={self.registry!r} is not a registry address "
                "(expected host[:port][/path] without a scheme or credentials, e.g. 127.0.0.1:5000)"
            )
        if not IMAGE_REF.match(self.base_image):
            raise ConfigError(
                f"{ENV_BASE_IMAGE}={self.base_image!r} is not an image reference "
                "(expected e.g. python:3.11-slim or registry.example.com/base/python:3.11)"
            )
        if self.ca_bundle is not None and not self.ca_bundle.is_file():
            raise ConfigError(f"{ENV_CA_BUNDLE}: {str(self.ca_bundle)!r} is not a file (expected a PEM CA bundle)")
        for tag in self.extra_tags:
            if not TAG.match(tag):
                raise ConfigError(
                    f"--tag {tag!r} is not an image tag (expected letters, digits, '_', '.', '-'; "
                    "at most 128, not starting with '.' or '-')"
                )
        if self.wheel is not None and not (self.wheel.is_file() and self.wheel.suffix == ".whl"):
            raise ConfigError(f"{ENV_WHEEL}: {str(self.wheel)!r} is not a wheel file (expected legion_ci-*.whl)")


def registry_auth(options: PackageOptions) -> dict[str, str] | None:
    """Credentials for the push, from LEGION_REGISTRY_USER / LEGION_REGISTRY_PASSWORD (both or neither)."""
    user = options.registry_user
    password = options.registry_password.get_secret_value() if options.registry_password else None
    if not user and not password:
        return None
    if not (user and password):
        missing = ENV_PASSWORD if user else ENV_USER
        raise ConfigError(f"{missing} is not set: registry credentials need both {ENV_USER} and {ENV_PASSWORD}")
    return {"username": user, "password": password}
