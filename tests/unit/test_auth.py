"""JWT checks of the model server: every kind of bad token is refused with a reason; good ones pass."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from legion_ci.auth.jwt import (
    AuthConfig,
    Authenticator,
    AuthError,
    NeedsRefresh,
    create_token,
    in_scope,
    load_or_create_secret,
)
from legion_ci.core.durations import parse_duration
from legion_ci.core.errors import ConfigError, SettingsError
from legion_ci.core.settings import Settings, load_settings

SECRET = "unit-secret-0123456789abcdef0123456789abcdef"
AUD = "legion-ci"
ISS = "https://issuer.test"


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "rsa2": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
    }


def _jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
    jwk.update({"kid": kid, "use": "sig", "alg": alg})
    return jwk


@pytest.fixture
def setup(tmp_path: Path, keys: dict[str, Any]) -> dict[str, Any]:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [_jwk(keys["rsa"], "rsa-1", "RS256"), _jwk(keys["ec"], "ec-1", "ES256")]}))
    revoked = tmp_path / "revoked.txt"
    revoked.write_text("")
    config = AuthConfig(True, SECRET, str(jwks), ISS, AUD, 7200, revoked)
    return {"auth": Authenticator(config, "iris", "1.2.0"), "jwks": jwks, "revoked": revoked}


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"aud": AUD, "iss": ISS, "iat": now, "nbf": now, "exp": now + 600, "jti": "j-1", "models": ["iris"]}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def hs(**over: Any) -> str:
    return jwt.encode(claims(**over), SECRET, algorithm="HS256")


def refused(auth: Authenticator, token: str, status: int, reason: str) -> None:
    with pytest.raises(AuthError, match=reason) as info:
        auth.check(f"Bearer {token}", may_refresh=False)
    assert info.value.status == status
    assert token not in info.value.message and SECRET not in info.value.message


def test_valid_tokens_pass(setup: dict[str, Any], keys: dict[str, Any]) -> None:
    auth = setup["auth"]
    auth.check(f"Bearer {hs()}")
    auth.check(f"Bearer {hs()}")  # from the cache
    auth.check(f"bearer {hs(models=['iris:1.*'])}")
    auth.check(f"Bearer {jwt.encode(claims(), keys['rsa'], algorithm='RS256', headers={'kid': 'rsa-1'})}")
    auth.check(f"Bearer {jwt.encode(claims(), keys['ec'], algorithm='ES256', headers={'kid': 'ec-1'})}")


def test_create_token_is_accepted_and_scoped() -> None:
    config = AuthConfig(True, SECRET, None, None, AUD, 7200, None)
    token = create_token(SECRET, "iris", "1.2.0", ttl_seconds=60)
    Authenticator(config, "iris", "1.2.0").check(f"Bearer {token}")
    with pytest.raises(AuthError, match=r"does not cover model 'iris' version '2\.0\.0'") as info:
        Authenticator(config, "iris", "2.0.0").check(f"Bearer {token}")
    assert info.value.status == 403


def test_missing_or_malformed_header(setup: dict[str, Any]) -> None:
    auth = setup["auth"]
    with pytest.raises(AuthError, match="missing bearer token"):
        auth.check(None)
    with pytest.raises(AuthError, match="must be 'Bearer <JWT>'"):
        auth.check(f"Basic {hs()}")
    refused(auth, "not.a.jwt", 401, "malformed token")


def _none_token() -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims())}."


def test_alg_none_is_refused(setup: dict[str, Any]) -> None:
    refused(setup["auth"], _none_token(), 401, "algorithm 'none' is not accepted")


def test_hs_rs_key_confusion_is_refused(setup: dict[str, Any], keys: dict[str, Any]) -> None:
    """An HS256 token signed with the server's *public* RSA key must not verify."""
    public_pem = (
        keys["rsa"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode()).rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
    import hashlib
    import hmac

    signature = base64.urlsafe_b64encode(hmac.new(public_pem, header + b"." + payload, hashlib.sha256).digest())
    token = (header + b"." + payload + b"." + signature.rstrip(b"=")).decode()
    refused(setup["auth"], token, 401, "signature does not verify")


def test_rs_token_with_an_ec_kid_is_refused(setup: dict[str, Any], keys: dict[str, Any]) -> None:
    token = jwt.encode(claims(), keys["rsa"], algorithm="RS256", headers={"kid": "ec-1"})
    refused(setup["auth"], token, 401, "not a RSA key for RS256")


@pytest.mark.parametrize(
    ("over", "status", "reason"),
    [
        ({"exp": "now-10"}, 401, "token expired at"),
        ({"nbf": "now+300"}, 401, r"not valid before .* \(nbf\)"),
        ({"aud": "someone-else"}, 401, "audience is not 'legion-ci'"),
        ({"aud": None}, 401, "lacks the required 'aud' claim"),
        ({"iss": "https://evil.test"}, 401, "issuer is not 'https://issuer.test'"),
        ({"iss": None}, 401, "lacks the required 'iss' claim"),
        ({"exp": None}, 401, "lacks the required 'exp' claim"),
        ({"exp": "now+10800"}, 401, "lifetime exceeds the maximum of 7200s"),
        ({"iat": "now-10800", "nbf": None}, 401, "lifetime exceeds the maximum"),
        ({"models": ["mnist", "iris:2.*"]}, 403, "does not cover model 'iris' version '1.2.0'"),
        ({"models": None}, 403, "no 'models' claim"),
        ({"models": "iris"}, 403, "does not cover"),
    ],
)
def test_bad_claims_are_refused(setup: dict[str, Any], over: dict[str, Any], status: int, reason: str) -> None:
    # times are written "now+N" and resolved here, when the test runs, not when it is collected
    resolved = {
        k: int(time.time()) + int(v[3:]) if isinstance(v, str) and v.startswith("now") else v for k, v in over.items()
    }
    refused(setup["auth"], hs(**resolved), status, reason)


def test_tampered_token_is_refused(setup: dict[str, Any]) -> None:
    header, _, signature = hs().split(".")
    other = base64.urlsafe_b64encode(json.dumps(claims(models=["*"])).encode()).rstrip(b"=").decode()
    refused(setup["auth"], f"{header}.{other}.{signature}", 401, "signature does not verify")
    refused(
        setup["auth"],
        jwt.encode(claims(), "another-secret-0123456789abcdef0123", algorithm="HS256"),
        401,
        "signature does not verify",
    )


def test_revoked_jti_is_refused_even_when_cached(setup: dict[str, Any]) -> None:
    auth, revoked = setup["auth"], setup["revoked"]
    token = hs(jti="to-revoke")
    auth.check(f"Bearer {token}")
    revoked.write_text("# revoked\nto-revoke\n")
    os.utime(revoked, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    auth.revocations._checked = 0.0
    refused(auth, token, 401, r"revoked \(jti 'to-revoke'\)")
    auth.check(f"Bearer {hs(jti='other')}")


def test_jwks_rotation_by_kid(setup: dict[str, Any], keys: dict[str, Any]) -> None:
    auth, jwks = setup["auth"], setup["jwks"]
    token = jwt.encode(claims(), keys["rsa2"], algorithm="RS256", headers={"kid": "rsa-2"})
    with pytest.raises(NeedsRefresh):
        auth.check(f"Bearer {token}")
    refused(auth, token, 401, "no key with kid 'rsa-2'")
    jwks.write_text(json.dumps({"keys": [_jwk(keys["rsa2"], "rsa-2", "RS256")]}))
    os.utime(jwks, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    auth.refresh_jwks()
    auth.check(f"Bearer {token}")
    old = jwt.encode(claims(), keys["rsa"], algorithm="RS256", headers={"kid": "rsa-1"})
    refused(auth, old, 401, "no key with kid 'rsa-1'")


def test_asymmetric_tokens_need_a_jwks(keys: dict[str, Any]) -> None:
    auth = Authenticator(AuthConfig(True, SECRET, None, None, AUD, 7200, None), "iris", "1.2.0")
    refused(auth, jwt.encode(claims(), keys["rsa"], algorithm="RS256"), 401, "need a JWKS")


def test_scope_patterns() -> None:
    assert in_scope(["iris"], "iris", "1.0.0")
    assert in_scope(["iris:1.*"], "iris", "1.4.2")
    assert in_scope(["*"], "anything", "9.9.9")
    assert not in_scope(["iris:2.*"], "iris", "1.0.0")
    assert not in_scope(["iri"], "iris", "1.0.0")
    assert not in_scope("iris", "iris", "1.0.0")


def test_secret_file_is_created_0600_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEGION_JWT_SECRET", raising=False)
    monkeypatch.delenv("LEGION_JWT_SECRET_FILE", raising=False)
    settings = Settings(home=tmp_path, registry_url="sqlite://")
    first = load_or_create_secret(settings)
    path = tmp_path / "secrets" / "jwt-hs256.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(first) == 64
    assert load_or_create_secret(settings) == first
    monkeypatch.setenv("LEGION_JWT_SECRET", "from-env")
    assert load_or_create_secret(load_settings(tmp_path, "sqlite://")) == "from-env"
    monkeypatch.delenv("LEGION_JWT_SECRET")
    monkeypatch.setenv("LEGION_JWT_SECRET_FILE", str(tmp_path / "missing.key"))
    with pytest.raises(ConfigError, match="LEGION_JWT_SECRET_FILE: cannot read"):
        load_or_create_secret(load_settings(tmp_path, "sqlite://"))


def test_auth_off_by_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGION_AUTH", "off")
    assert not AuthConfig.from_settings(load_settings(tmp_path, "sqlite://")).enabled
    monkeypatch.setenv("LEGION_AUTH", "on")
    monkeypatch.setenv("LEGION_JWT_MAX_TTL", "forever")
    with pytest.raises(SettingsError, match=r"LEGION_JWT_MAX_TTL='forever' is not valid \(expected a duration"):
        load_settings(tmp_path, "sqlite://")


def test_parse_duration() -> None:
    assert parse_duration("90") == 90 and parse_duration("30m") == 1800 and parse_duration("7d") == 604800
    with pytest.raises(ConfigError):
        parse_duration("0s")


@pytest.mark.parametrize(
    "text, ids",
    [
        ("12345", {"12345"}),
        ("12345\n", {"12345"}),
        ('["a", "b"]', {"a", "b"}),
        ("[777]", {"777"}),
        ("  [\n]", set()),
        ("# nothing yet\n", set()),
        ("a-1\n\n  b.2  # why\n# c\n", {"a-1", "b.2"}),
        ("", set()),
    ],
)
def test_every_documented_revocation_form_is_read(text: str, ids: set[str]) -> None:
    from legion_ci.auth.jwt import parse_revocations

    assert parse_revocations(text, "revoked.txt") == ids


@pytest.mark.parametrize(
    "text, reason",
    [
        ('["a", ', "not a JSON array"),
        ('["a", {"jti": "b"}]', "item [1]"),
        ("[true]", "item [0]"),
        ('"abc"', "line 1: '\"abc\"' is not a bare token id"),
        ('{"revoked": ["a"]}', "line 1"),
        ("a\nb c\n", "line 2: 'b c'"),
    ],
)
def test_an_unreadable_revocation_file_is_an_error_naming_the_line(text: str, reason: str) -> None:
    from legion_ci.auth.jwt import parse_revocations
    from legion_ci.core.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(reason)):
        parse_revocations(text, "revoked.txt")
