"""Bearer tokens against the real server: each bad token is refused with a reason, good ones answer."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.hostile import malformed_tokens

from .conftest import JWT_SECRET, Server, start_server

API = "/api/model/iris/1.0.0"
BODY = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
ISS = "https://issuer.test"


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "aud": "legion-ci",
        "iss": ISS,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "ok",
        "models": ["iris:1.*"],
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def hs(**over: Any) -> str:
    return jwt.encode(claims(**over), JWT_SECRET, algorithm="HS256")


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def call(server: Server, token: str | None, path: str = f"{API}/invoke") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(f"{server.url}{path}", json=BODY, headers=headers)


def test_valid_tokens_answer(server: Server, token: str, jwt_files: dict[str, Any]) -> None:
    assert call(server, token).json()["predictions"] == [0]
    assert call(server, hs(models=["iris"])).status_code == 200
    rs = jwt.encode(claims(), jwt_files["rsa"], algorithm="RS256", headers={"kid": "rsa-1"})
    es = jwt.encode(claims(), jwt_files["ec"], algorithm="ES256", headers={"kid": "ec-1"})
    assert call(server, rs).status_code == 200
    assert call(server, es).status_code == 200
    v2 = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": BODY["instances"][0]}]}
    assert (
        httpx.post(f"{server.url}/v2/models/iris/infer", json=v2, headers={"Authorization": f"Bearer {rs}"}).status_code
        == 200
    )


def _none() -> str:
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}."


def _confused(jwt_files: dict[str, Any]) -> str:
    """HS256 signed with the public RSA key the JWKS publishes (the classic key-confusion attack)."""
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import serialization

    pem = (
        jwt_files["rsa"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    signing = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': 'rsa-1'})}.{b64(claims())}"
    sig = base64.urlsafe_b64encode(hmac.new(pem, signing.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    return f"{signing}.{sig}"


def _tampered() -> str:
    header, _, signature = hs(models=["other"]).split(".")
    return f"{header}.{b64(claims(models=['*']))}.{signature}"


CASES = {
    "missing": (lambda f: None, 401, "missing bearer token"),
    "garbage": (lambda f: "abc", 401, "malformed token"),
    "alg none": (lambda f: _none(), 401, "algorithm 'none' is not accepted"),
    "hs/rs confusion": (_confused, 401, "signature does not verify"),
    "expired": (lambda f: hs(exp=int(time.time()) - 5), 401, "token expired at"),
    "nbf in the future": (lambda f: hs(nbf=int(time.time()) + 600), 401, "not valid before"),
    "wrong audience": (lambda f: hs(aud="grafana"), 401, "audience is not 'legion-ci'"),
    "wrong issuer": (lambda f: hs(iss="https://evil.test"), 401, "issuer is not 'https://issuer.test'"),
    "no issuer": (lambda f: hs(iss=None), 401, "lacks the required 'iss' claim"),
    "tampered": (lambda f: _tampered(), 401, "signature does not verify"),
    "other secret": (lambda f: jwt.encode(claims(), "x" * 40, algorithm="HS256"), 401, "signature does not verify"),
    "unknown kid": (
        lambda f: jwt.encode(claims(), f["rsa"], algorithm="RS256", headers={"kid": "nope"}),
        401,
        "no key with kid 'nope'",
    ),
    "over max lifetime": (lambda f: hs(exp=int(time.time()) + 5 * 3600), 401, "lifetime exceeds the maximum"),
    "out of scope model": (lambda f: hs(models=["mnist"]), 403, "does not cover model 'iris' version '1.0.0'"),
    "out of scope version": (lambda f: hs(models=["iris:2.*"]), 403, "does not cover model 'iris'"),
    "no models claim": (lambda f: hs(models=None), 403, "no 'models' claim"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_tokens_are_refused_with_a_reason(server: Server, jwt_files: dict[str, Any], case: str) -> None:
    make, status, reason = CASES[case]
    token = make(jwt_files)
    for path in (f"{API}/invoke", "/v2/models/iris/infer", f"{API}/feedback"):
        answer = call(server, token, path)
        assert answer.status_code == status, (path, answer.text)
        assert reason in answer.json()["error"]
        if token:
            assert token not in answer.text
    if status == 401:
        assert answer.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


def test_revoked_token_is_refused(server: Server, jwt_files: dict[str, Any]) -> None:
    token = hs(jti="revoke-me")
    assert call(server, token).status_code == 200
    jwt_files["revoked"].write_text("# revoked\nrevoke-me\n")
    deadline = time.monotonic() + 10
    while call(server, token).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)  # the server rereads the list at most once a second
    answer = call(server, token)
    assert answer.status_code == 401 and "revoked" in answer.json()["error"]
    assert call(server, hs(jti="still-fine")).status_code == 200


def test_open_endpoints_need_no_token(server: Server) -> None:
    for path in ("/health/live", "/health/ready", "/metrics", "/openapi.json", "/v2/health/ready"):
        assert httpx.get(f"{server.url}{path}").status_code == 200, path


MALFORMED = malformed_tokens(JWT_SECRET, "legion-ci", ISS)


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_token_fields_are_401_never_5xx(server: Server, case: str) -> None:
    token = MALFORMED[case]
    for path in (f"{API}/invoke", "/v2/models/iris/infer", f"{API}/feedback"):
        answer = call(server, token, path)
        assert answer.status_code == 401, (case, path, answer.text)
        assert answer.json()["error"] and token not in answer.text
    assert call(server, hs()).status_code == 200  # the server is still fine


def test_a_single_numeric_jti_in_the_revocation_file_is_revoked(server: Server, jwt_files: dict[str, Any]) -> None:
    token = hs(jti="12345")
    assert call(server, token).status_code == 200
    jwt_files["revoked"].write_text("12345")  # no newline, no comment: also valid JSON (a number)
    deadline = time.monotonic() + 10
    while call(server, token).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    answer = call(server, token)
    assert answer.status_code == 401 and "revoked" in answer.json()["error"]
    jwt_files["revoked"].write_text('["a-1", 777]')
    deadline = time.monotonic() + 10
    while call(server, hs(jti="777")).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert call(server, hs(jti="777")).status_code == 401
    assert call(server, token).status_code == 200  # no longer in the list
    jwt_files["revoked"].write_text("# revoked token ids\n")


def test_an_unparseable_revocation_file_stops_the_server(
    iris_artifact: Path, tmp_path: Path, auth_env: dict[str, str]
) -> None:
    bad = tmp_path / "revoked.json"
    bad.write_text('["a", {"jti": "b"}]')
    with pytest.raises(RuntimeError, match=r"revoked.json.*item \[1\]"):
        start_server(iris_artifact, tmp_path / "home", env={**auth_env, "LEGION_JWT_REVOKED": str(bad)}, timeout=60)


def test_a_key_removed_from_the_jwks_stops_its_cached_tokens(
    iris_artifact: Path, tmp_path: Path, auth_env: dict[str, str], jwt_files: dict[str, Any]
) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(jwt_files["jwks_data"]))
    srv = start_server(iris_artifact, tmp_path / "home", env={**auth_env, "LEGION_JWKS": str(jwks)})
    try:
        rs = jwt.encode(claims(), jwt_files["rsa"], algorithm="RS256", headers={"kid": "rsa-1"})
        es = jwt.encode(claims(), jwt_files["ec"], algorithm="ES256", headers={"kid": "ec-1"})
        assert call(srv, rs).status_code == 200 and call(srv, es).status_code == 200  # both now cached
        kept = [k for k in jwt_files["jwks_data"]["keys"] if k["kid"] != "rsa-1"]
        jwks.write_text(json.dumps({"keys": kept}))
        deadline = time.monotonic() + 10  # the JWKS file is rechecked once a second
        while call(srv, rs).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        answer = call(srv, rs)
        assert answer.status_code == 401 and "rsa-1" in answer.json()["error"]
        assert call(srv, es).status_code == 200
    finally:
        srv.stop()
