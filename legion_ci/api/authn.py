"""Who is calling: the model server's JWT verification (HS256 secret or JWKS, exp/nbf/iss/aud, max lifetime,
revocation) with the management audience, turned into a Principal."""

from __future__ import annotations

import asyncio
import dataclasses
import time

from legion_ci.api.roles import Principal
from legion_ci.auth.jwt import AuthConfig, Authenticator, NeedsRefresh, bearer_token
from legion_ci.core.errors import ConfigError
from legion_ci.core.settings import Settings

DEFAULT_AUDIENCE = Settings.model_fields["api_audience"].default


def auth_config(settings: Settings) -> AuthConfig:
    """The model servers' auth settings with the management audience (LEGION_API_AUDIENCE, never the model
    servers' own, so a token for calling a model cannot manage it); always enabled."""
    config = AuthConfig.from_settings(settings)
    if not config.enabled:
        raise ConfigError(
            "LEGION_AUTH=off: the management API never runs without token checks; "
            "unset LEGION_AUTH for `legion-ci api serve` (it is meant for model servers)"
        )
    return dataclasses.replace(config, audience=settings.api_audience)


def bearer(authorization: str | None) -> str:
    return bearer_token(authorization, "`legion-ci token create-admin --role viewer` issues one")


class ManagementAuth:
    """Verifies bearer tokens with the serving Authenticator's core; no model scope there (roles.py does it)."""

    def __init__(self, config: AuthConfig) -> None:
        self.authenticator = Authenticator(config, model="", version="")

    @property
    def audience(self) -> str:
        return self.authenticator.config.audience

    async def principal(self, authorization: str | None) -> Principal:
        """The caller, or AuthError (401) / ApiError (403 for a missing or unknown role)."""
        token = bearer(authorization)
        try:
            claims = self.authenticator.claims(token, time.time())
        except NeedsRefresh:
            await asyncio.to_thread(self.authenticator.refresh_jwks)
            claims = self.authenticator.claims(token, time.time(), may_refresh=False)
        return Principal.from_claims(claims)
