"""legion_ci/auth/tokens.py: the one helper that mints model tokens, with the configured audience, issuer
and maximum lifetime, so the servers of the same settings accept what it mints."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from legion_ci.auth.jwt import AuthConfig, Authenticator, AuthError
from legion_ci.auth.tokens import check_ttl, mint_model_token
from legion_ci.core.artifact import Artifact
from legion_ci.core.errors import ConfigError
from legion_ci.core.settings import Settings, env_name, load_settings
from legion_ci.quality import smoke

SECRET = "tokens-secret-0123456789abcdef0123456789abcdef"


@pytest.fixture
def issuer_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    for field in Settings.model_fields:
        monkeypatch.delenv(env_name(field), raising=False)
    monkeypatch.setenv("LEGION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LEGION_JWT_SECRET", SECRET)
    monkeypatch.setenv("LEGION_JWT_ISSUER", "https://issuer.example")
    monkeypatch.setenv("LEGION_JWT_AUDIENCE", "fraud-models")
    monkeypatch.setenv("LEGION_JWT_MAX_TTL", "1h")
    return load_settings()


def test_a_minted_token_carries_the_configured_audience_and_issuer(issuer_settings: Settings) -> None:
    token = mint_model_token(issuer_settings, "iris", "1.0.0", 600)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="fraud-models", issuer="https://issuer.example")
    assert claims["models"] == ["iris:1.0.0"] and claims["exp"] - claims["iat"] == 600
    server = Authenticator(AuthConfig.from_settings(issuer_settings), "iris", "1.0.0")
    assert server.claims(token, time.time())["iss"] == "https://issuer.example"


def test_the_servers_refuse_a_token_minted_the_old_smoke_way(issuer_settings: Settings) -> None:
    """What smoke used to mint (default audience, no issuer) fails against servers with an issuer set."""
    from legion_ci.auth.jwt import create_token

    old = create_token(SECRET, "iris", None, ttl_seconds=300)
    server = Authenticator(AuthConfig.from_settings(issuer_settings), "iris", "1.0.0")
    with pytest.raises(AuthError):
        server.claims(old, time.time())


def test_smoke_headers_are_accepted_by_servers_with_an_issuer(issuer_settings: Settings, tmp_path: Path) -> None:
    from tests.integration.conftest import build_iris_artifact

    art = Artifact.open(build_iris_artifact(tmp_path / "iris", version="1.0.0"))
    headers = smoke.auth_headers(issuer_settings, art, True)
    token = headers["Authorization"].removeprefix("Bearer ")
    server = Authenticator(AuthConfig.from_settings(issuer_settings), art.name, art.version)
    claims = server.claims(token, time.time())
    assert claims["aud"] == "fraud-models" and claims["iss"] == "https://issuer.example"
    assert smoke.auth_headers(issuer_settings, art, False) == {}


def test_a_lifetime_the_servers_would_refuse_is_an_error(issuer_settings: Settings) -> None:
    assert check_ttl(issuer_settings, 3600) == 3600
    with pytest.raises(
        ConfigError, match=r"--ttl: 7200s is longer than the servers accept \(3600s, LEGION_JWT_MAX_TTL\)"
    ):
        check_ttl(issuer_settings, 7200, "--ttl")
    with pytest.raises(ConfigError, match="not a positive number of seconds"):
        mint_model_token(issuer_settings, "iris", None, 0)
