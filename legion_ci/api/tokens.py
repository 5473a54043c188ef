"""Issue management tokens: HS256 JWTs with a role (and optionally model patterns) for the management API."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

from legion_ci.api.roles import ROLES
from legion_ci.core.errors import ConfigError


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ConfigError(f"--role: {role!r} is not one of {', '.join(ROLES)}")
    return role


def create_management_token(
    secret: str,
    role: str,
    sub: str,
    ttl_seconds: int,
    audience: str,
    issuer: str | None = None,
    models: list[str] | None = None,
) -> str:
    """A token for `sub` with `role`, expiring after `ttl_seconds`; `models` limits the models it covers."""
    check_role(role)
    if ttl_seconds <= 0:
        raise ConfigError(f"token ttl: {ttl_seconds} is not a positive number of seconds")
    if not sub.strip():
        raise ConfigError("--sub: the subject must not be empty (it names the caller in the audit log)")
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "role": role,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    if models:
        claims["models"] = list(models)
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")
