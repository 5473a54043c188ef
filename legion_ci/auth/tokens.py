"""Minting tokens for legion-ci's own calls and for `legion-ci token create`: one place that applies the
configured audience, issuer and maximum lifetime, so what legion-ci mints is what its servers accept."""

from __future__ import annotations

from legion_ci.auth.jwt import create_token, load_or_create_secret
from legion_ci.core.errors import ConfigError
from legion_ci.core.settings import Settings, env_name


def check_ttl(
    settings: Settings,
    ttl_seconds: int,
    what: str = "token ttl",
    given: str | None = None,
    by: str = "the servers accept",
) -> int:
    """`ttl_seconds`, or ConfigError when the servers (`by`: "the servers accept", "the API accepts") would
    refuse a token that long-lived; `given` is the value as the user wrote it, for the message."""
    if ttl_seconds <= 0:
        raise ConfigError(f"{what}: {ttl_seconds} is not a positive number of seconds")
    if ttl_seconds > settings.jwt_max_ttl:
        raise ConfigError(
            f"{what}: {given or f'{ttl_seconds}s'} is longer than {by} "
            f"({settings.jwt_max_ttl}s, {env_name('jwt_max_ttl')})"
        )
    return ttl_seconds


def mint_model_token(
    settings: Settings,
    model: str,
    version: str | None,
    ttl_seconds: int,
    audience: str | None = None,
    issuer: str | None = None,
) -> str:
    """An HS256 token for `model` (any version when `version` is None) that the model servers of these
    settings accept: their audience (LEGION_JWT_AUDIENCE) and issuer (LEGION_JWT_ISSUER) unless overridden."""
    check_ttl(settings, ttl_seconds)
    return create_token(
        load_or_create_secret(settings),
        model,
        version,
        ttl_seconds,
        audience or settings.jwt_audience,
        issuer or settings.jwt_issuer,
    )
