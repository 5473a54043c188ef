"""Hostile input shared by the model-server and management-API tests: tokens whose header or claims are
malformed (any type, any value) but correctly signed, so each one reaches every check behind the signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _json(value: Any) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def signed(header: Any, claims: Any, secret: str) -> str:
    """A JWT with exactly this header and these claims (any JSON, or its bytes), HS256-signed with `secret`
    whatever the header says, so a type check, not the signature, has to refuse it."""
    head = b64(_json(header))
    body = b64(_json(claims))
    signature = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


def nested(depth: int) -> bytes:
    """An array nested `depth` deep, as JSON text (json.dumps itself would recurse too deep)."""
    return b"[" * depth + b"1" + b"]" * depth


def malformed_tokens(secret: str, audience: str, issuer: str | None = None) -> dict[str, str]:
    """name -> a token every server must answer with 401 (never 5xx): one per class of malformed field."""
    now = int(time.time())
    good: dict[str, Any] = {"sub": "x", "aud": audience, "iat": now, "nbf": now, "exp": now + 600, "jti": "j"}
    if issuer:
        good["iss"] = issuer
    hs = {"alg": "HS256", "typ": "JWT"}

    def claims(**over: Any) -> dict[str, Any]:
        return {**good, **over}

    cases: dict[str, tuple[Any, Any]] = {
        "alg is a list": ({"alg": ["HS256"], "typ": "JWT"}, good),
        "alg is an object": ({"alg": {"name": "RS256"}, "typ": "JWT"}, good),
        "alg is a number": ({"alg": 256}, good),
        "alg is null": ({"alg": None}, good),
        "alg is true": ({"alg": True}, good),
        "alg is absent": ({"typ": "JWT"}, good),
        "kid is a list": ({"alg": "RS256", "kid": ["rsa-1"]}, good),
        "kid is an object": ({"alg": "ES256", "kid": {"a": 1}}, good),
        "kid is a number": ({"alg": "HS256", "kid": 7}, good),
        "header is an array": (["HS256"], good),
        "header nested deep": (b'{"alg": "HS256", "x": ' + nested(3000) + b"}", good),
        "claims are an array": (hs, [good]),
        "claims are a string": (hs, "claims"),
        "claims are null": (hs, None),
        "claims nested deep": (hs, json.dumps(good)[:-1].encode() + b', "x": ' + nested(3000) + b"}"),
        "exp is a numeric string": (hs, claims(exp=str(now + 600))),
        "exp is a decimal string": (hs, claims(exp=f"{now + 600}.0")),
        "exp is true": (hs, claims(exp=True)),
        "exp is a list": (hs, claims(exp=[now + 600])),
        "exp is an object": (hs, claims(exp={"at": now + 600})),
        "exp is null": (hs, claims(exp=None)),
        "exp is huge": (hs, claims(exp=10**400)),
        "exp is 1e308": (hs, claims(exp=1e308)),
        "nbf is a numeric string": (hs, claims(nbf=str(now))),
        "nbf is a list": (hs, claims(nbf=[now])),
        "nbf is true": (hs, claims(nbf=True)),
        "iat is a numeric string": (hs, claims(iat=str(now))),
        "iat is an object": (hs, claims(iat={})),
        "jti is a list": (hs, claims(jti=["a"])),
        "jti is an object": (hs, claims(jti={"a": 1})),
        "jti is a number": (hs, claims(jti=12345)),
        "aud is an object": (hs, claims(aud={"aud": audience})),
        "aud is a number": (hs, claims(aud=1)),
        "aud is a list of lists": (hs, claims(aud=[[audience]])),
        "iss is a list": (hs, claims(iss=[issuer or "x"])),
        "iss is a number": (hs, claims(iss=1)),
        "sub is a list": (hs, claims(sub=["x"])),
    }
    tokens = {name: signed(header, body, secret) for name, (header, body) in cases.items()}
    for word in ("NaN", "Infinity"):  # not JSON, but Python's json module reads them
        raw = json.dumps(good).replace(f'"exp": {now + 600}', f'"exp": {word}').encode()
        tokens[f"exp is {word}"] = signed(hs, raw, secret)
    tokens["claims are not UTF-8"] = signed(hs, b'{"exp": "\xff\xfe"}', secret)
    return tokens
