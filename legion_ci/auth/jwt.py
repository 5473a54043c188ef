"""JWT bearer auth for the model server: HS256 with a shared secret, RS/ES/PS keys from a JWKS.

Settings (legion_ci/core/settings.py, read once when the process starts):
  LEGION_AUTH=off           no checks at all (the demo; `serve --no-auth` does the same)
  LEGION_JWT_SECRET         the HS256 secret, or LEGION_JWT_SECRET_FILE naming a file that holds it;
                            otherwise $LEGION_HOME/secrets/jwt-hs256.key, created 0600 on first use
  LEGION_JWKS               a JWKS file path or http(s) URL (an OIDC provider's jwks_uri); keys by `kid`
  LEGION_JWT_ISSUER         required `iss` when set
  LEGION_JWT_AUDIENCE       required `aud` (default "legion-ci")
  LEGION_JWT_MAX_TTL        the longest lifetime a token may have, e.g. 86400, 12h, 7d (default 24h)
  LEGION_JWT_REVOKED        a file of revoked `jti`s: a JSON array, or one per line (# comments); a file
                            that cannot be read as either stops the server (or, once running, keeps the
                            last good list and logs an error)
Tokens carry a `models` claim: patterns "name" or "name:version" with shell globs ("iris:1.*", "*").
Neither tokens nor secrets are ever logged or put in messages. Whatever a caller puts in a token (any
header field, any claim, of any type) ends in a 401 or 403 with a reason, never in a server error.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import os
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from legion_ci.core.errors import ConfigError, LegionError, preview
from legion_ci.core.settings import Settings

log = logging.getLogger(__name__)
DEFAULT_AUDIENCE = "legion-ci"
DEFAULT_MAX_TTL = 86400
SECRET_FILE = "jwt-hs256.key"
ASYMMETRIC = {
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "PS384": "RSA",
    "ES256": "EC",
    "ES384": "EC",
}
CURVES = {"ES256": "P-256", "ES384": "P-384"}
CACHE_SIZE = 10_000
RECHECK_SECONDS = 1.0  # how often the revocation list and a JWKS file are checked for changes
JWKS_URL_TTL = 300.0
JWKS_URL_MIN_REFRESH = 10.0
_BARE_JTI = re.compile(r"^[^\s\"'\[\]{},]+$")


class AuthError(LegionError):
    """A request's token is refused: 401 (no valid token) or 403 (valid, but not for this model)."""

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.status = status


def load_or_create_secret(settings: Settings) -> str:
    """The HS256 secret: LEGION_JWT_SECRET, the file LEGION_JWT_SECRET_FILE, or LEGION_HOME's key file."""
    if settings.jwt_secret_value:
        return settings.jwt_secret_value
    named = settings.jwt_secret_file
    path = named if named else settings.home / "secrets" / SECRET_FILE
    if named or path.exists():
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"LEGION_JWT_SECRET_FILE: cannot read {str(path)!r}: {exc.strerror}") from None
        if not secret:
            raise ConfigError(f"{path}: the JWT secret file is empty")
        return secret
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret = secrets.token_hex(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    try:
        os.link(tmp, path)  # never replaces a secret another process created meanwhile
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text(encoding="utf-8").strip()


def create_token(
    secret: str,
    model: str,
    version: str | None = None,
    ttl_seconds: int = 3600,
    audience: str = DEFAULT_AUDIENCE,
    issuer: str | None = None,
) -> str:
    """An HS256 token for one model (and version, when given) that expires after `ttl_seconds`."""
    if ttl_seconds <= 0:
        raise ConfigError(f"token ttl: {ttl_seconds} is not a positive number of seconds")
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "legion-ci",
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
        "models": [f"{model}:{version}" if version else model],
    }
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")


def in_scope(patterns: Any, model: str, version: str) -> bool:
    """True when one of the token's `models` patterns covers model (and version)."""
    if not isinstance(patterns, list):
        return False
    for p in patterns:
        if not isinstance(p, str):
            continue
        name, _, ver = p.partition(":")
        if fnmatch.fnmatchcase(model, name) and (not ver or fnmatch.fnmatchcase(version, ver)):
            return True
    return False


@dataclass(frozen=True)
class AuthConfig:
    """Auth settings of one server, from Settings (see the module docstring)."""

    enabled: bool
    secret: str | None
    jwks: str | None
    issuer: str | None
    audience: str
    max_ttl: int
    revoked: Path | None

    @classmethod
    def from_settings(cls, settings: Settings, enabled: bool = True) -> AuthConfig:
        if not enabled or not settings.auth:
            return cls(False, None, None, None, DEFAULT_AUDIENCE, DEFAULT_MAX_TTL, None)
        return cls(
            enabled=True,
            secret=load_or_create_secret(settings),
            jwks=settings.jwks,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            max_ttl=settings.jwt_max_ttl,
            revoked=settings.jwt_revoked,
        )


class NeedsRefresh(Exception):
    """The token names a key the cached JWKS lacks; fetch the JWKS again (off the event loop) and retry."""


class Jwks:
    """Public keys by `kid` from a JWKS file or URL, reloaded when the file changes or a new kid appears."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.remote = source.startswith(("http://", "https://"))
        self.keys: list[dict[str, Any]] = []
        self.version = 0
        self._stamp: float | None = None
        self._loaded = 0.0
        self._checked = 0.0
        self._lock = threading.Lock()
        self.refresh(force=True)

    def _read(self) -> dict[str, Any]:
        if self.remote:
            import httpx

            try:
                answer = httpx.get(self.source, timeout=5.0)
                answer.raise_for_status()
                return dict(answer.json())
            except (httpx.HTTPError, ValueError) as exc:
                raise ConfigError(f"LEGION_JWKS: cannot fetch {self.source}: {exc}") from None
        try:
            return dict(json.loads(Path(self.source).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"LEGION_JWKS: cannot read {self.source!r} as a JWKS: {exc}") from None

    def refresh(self, force: bool = False) -> None:
        with self._lock:
            if not force and self.remote and time.monotonic() - self._loaded < JWKS_URL_MIN_REFRESH:
                return
            if not self.remote:
                stamp = Path(self.source).stat().st_mtime_ns if Path(self.source).exists() else None
                if not force and stamp == self._stamp:
                    return
                self._stamp = stamp
            data = self._read()
            keys = data.get("keys")
            if not isinstance(keys, list):
                raise ConfigError(f"LEGION_JWKS: {self.source} has no 'keys' array")
            self.keys = [k for k in keys if isinstance(k, dict) and k.get("use", "sig") == "sig"]
            self._loaded = time.monotonic()
            self.version += 1

    def maybe_reload(self) -> None:
        """Cheap check, at most once a second: a changed file, or an expired URL cache."""
        now = time.monotonic()
        if now - self._checked < RECHECK_SECONDS:
            return
        self._checked = now
        if not self.remote:
            try:
                self.refresh()
            except (ConfigError, OSError):
                pass  # keep the keys we have; a half-written file is read again next time

    @property
    def stale(self) -> bool:
        return self.remote and time.monotonic() - self._loaded > JWKS_URL_TTL

    def key_for(self, kid: str | None, alg: str) -> Any:
        family = ASYMMETRIC[alg]
        candidates = [k for k in self.keys if k.get("kty") == family and (kid is None or k.get("kid") == kid)]
        if alg in CURVES:
            candidates = [k for k in candidates if k.get("crv") == CURVES[alg]]
        if kid is not None and not candidates:
            if any(k.get("kid") == kid for k in self.keys):
                raise AuthError(f"key {kid!r} in the JWKS is not a {family} key for {alg}")
            raise NeedsRefresh(kid)
        if not candidates:
            raise AuthError(f"the JWKS holds no {family} key for {alg}")
        if len(candidates) > 1:
            raise AuthError(f"token has no 'kid' and the JWKS holds {len(candidates)} {family} keys")
        jwk = candidates[0]
        if jwk.get("alg") and jwk["alg"] != alg:
            raise AuthError(f"key {jwk.get('kid')!r} is for {jwk['alg']}, but the token says {alg}")
        try:
            return jwt.PyJWK(jwk, algorithm=alg).key
        except jwt.PyJWKError as exc:
            raise AuthError(f"key {jwk.get('kid')!r} in the JWKS cannot verify {alg}: {exc}") from None


def parse_revocations(text: str, where: str) -> frozenset[str]:
    """The revoked `jti`s of a revocation file: a JSON array of strings (or integers), or one `jti` per line
    with `#` comments. ConfigError, naming the file and line, for anything else: a file that cannot be read
    must never revoke nothing."""
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{where}: not a JSON array of token ids: {exc}") from None
        ids: list[str] = []
        for k, item in enumerate(data):
            if isinstance(item, str) and item:
                ids.append(item)
            elif isinstance(item, int) and not isinstance(item, bool):
                ids.append(str(item))
            else:
                raise ConfigError(f"{where}: item [{k}] is {preview(item)}; expected a token id (a string)")
        return frozenset(ids)
    ids = []
    for n, line in enumerate(text.splitlines(), 1):
        jti = line.split("#", 1)[0].strip()
        if not jti:
            continue
        if not _BARE_JTI.match(jti):
            raise ConfigError(
                f"{where}: line {n}: {preview(jti)} is not a bare token id (one jti per line, no quotes or "
                'spaces; or make the whole file a JSON array like ["id-1", "id-2"])'
            )
        ids.append(jti)
    return frozenset(ids)


class Revocations:
    """Revoked `jti`s from a file, reloaded when it changes (checked at most once a second).

    A file that cannot be parsed raises ConfigError when the server starts; later, the last good list
    stays in force and each bad version is logged as an error."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.ids: frozenset[str] = frozenset()
        self._stamp: int | None = None
        self._checked = 0.0
        self.reload()

    def reload(self) -> None:
        if self.path is None:
            return
        try:
            stamp = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self.ids, self._stamp = frozenset(), None
            return
        if stamp == self._stamp:
            return
        where = f"LEGION_JWT_REVOKED {str(self.path)!r}"
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{where}: cannot read it as UTF-8 text: {exc}") from None
        ids = parse_revocations(text, where)
        self.ids, self._stamp = ids, stamp

    def revoked(self, jti: Any) -> bool:
        if self.path is None:
            return False
        now = time.monotonic()
        if now - self._checked >= RECHECK_SECONDS:
            self._checked = now
            try:
                self.reload()
            except ConfigError as exc:
                log.error("%s; the previous list of %d revoked tokens stays in force", exc, len(self.ids))
        return jti in self.ids


def _number(claims: dict[str, Any], name: str) -> float | None:
    """A time claim as a number (NumericDate: an integer or decimal JSON number), None when absent."""
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AuthError(f"token's {name!r} claim is {preview(value)}; expected a number of seconds since 1970")
    return float(value)


def _when(ts: Any) -> str:
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(ts)))
    except (TypeError, ValueError, OverflowError):
        return repr(ts)


def bearer_token(authorization: str | None, how_to_get_one: str) -> str:
    """The JWT of an `Authorization: Bearer <JWT>` header; AuthError (saying how to get one) otherwise."""
    if not authorization:
        raise AuthError(f"missing bearer token (send 'Authorization: Bearer <JWT>'; {how_to_get_one})")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError("the Authorization header must be 'Bearer <JWT>'")
    return token


class Authenticator:
    """Checks bearer tokens for one model version; verified tokens are cached until they expire."""

    def __init__(self, config: AuthConfig, model: str, version: str) -> None:
        self.config = config
        self.model, self.version = model, version
        self.jwks = Jwks(config.jwks) if config.jwks else None
        self.revocations = Revocations(config.revoked)
        self._cache: dict[str, tuple[float, float, Any, int]] = {}
        self._jwks_version = self.jwks.version if self.jwks else 0

    def check(self, authorization: str | None, may_refresh: bool = True) -> None:
        """Raise AuthError unless the Authorization header holds a valid token for this model version.

        Raises NeedsRefresh when the JWKS must be fetched first (only if `may_refresh`)."""
        token = bearer_token(authorization, "`legion-ci token create --model NAME` issues one")
        now = time.time()
        hit = self._cache.get(token)
        if hit is not None and self.jwks is not None and not self._keys_current():
            hit = None
        if hit is not None:
            exp, nbf, jti, status = hit
            if now < exp and now >= nbf and not self.revocations.revoked(jti):
                if status:
                    raise AuthError(self._scope_reason(status), 403)
                return
        self._verify(token, now, may_refresh)

    def _keys_current(self) -> bool:
        """False (and the cache emptied) when the JWKS was reloaded or is due for a fetch: a removed key
        stops its cached tokens within the reload interval, not when they expire."""
        jwks = self.jwks
        assert jwks is not None
        jwks.maybe_reload()
        if jwks.version != self._jwks_version:
            self._cache.clear()
            self._jwks_version = jwks.version
            return False
        return not jwks.stale

    def _scope_reason(self, status: int) -> str:
        if status == 2:
            return "token has no 'models' claim naming the models it may call"
        return f"token does not cover model {self.model!r} version {self.version!r} (see its 'models' claim)"

    def _verify(self, token: str, now: float, may_refresh: bool) -> None:
        claims = self.claims(token, now, may_refresh)
        exp, nbf, jti = float(claims["exp"]), float(claims.get("nbf") or 0), claims.get("jti")
        status = 0 if in_scope(claims.get("models"), self.model, self.version) else 1 if "models" in claims else 2
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[token] = (exp, nbf, jti, status)
        if status:
            raise AuthError(self._scope_reason(status), 403)

    def claims(self, token: str, now: float, may_refresh: bool = True) -> dict[str, Any]:
        """The claims of a token whose signature, exp/nbf, iss/aud, lifetime and revocation check out; no
        scope check (the caller's). Raises AuthError, or NeedsRefresh as `check` does."""
        try:
            return self._claims(token, now, may_refresh)
        except (AuthError, NeedsRefresh):
            raise
        except Exception as exc:  # a token is caller data: whatever it holds, the answer is a 401
            log.warning("token refused: %s while checking it", type(exc).__name__)
            raise AuthError("malformed token (a header field or claim has an unexpected type or value)") from None

    def _claims(self, token: str, now: float, may_refresh: bool) -> dict[str, Any]:
        cfg = self.config
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("malformed token (expected a signed JWT: header.payload.signature)") from None
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise AuthError(f"token header's 'alg' is {preview(alg)}; expected a string such as 'HS256' or 'RS256'")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthError(f"token header's 'kid' is {preview(kid)}; expected a string")
        if alg == "HS256":
            if not cfg.secret:
                raise AuthError("HS256 tokens are not accepted here (no shared secret)")
            key: Any = cfg.secret
        elif alg in ASYMMETRIC:
            if self.jwks is None:
                raise AuthError(f"{alg} tokens need a JWKS (set LEGION_JWKS to a file or URL)")
            self.jwks.maybe_reload()
            if self.jwks.stale and may_refresh:
                raise NeedsRefresh("stale")
            if self.jwks.version != self._jwks_version:
                self._cache.clear()
                self._jwks_version = self.jwks.version
            try:
                key = self.jwks.key_for(kid, alg)
            except NeedsRefresh:
                if may_refresh:
                    raise
                raise AuthError(f"no key with kid {kid!r} in the JWKS") from None
        else:
            raise AuthError(
                f"algorithm {preview(alg)} is not accepted (expected HS256, or one of {', '.join(ASYMMETRIC)} "
                "with a JWKS)"
            )
        claims = self._decode(token, key, alg)
        exp, nbf, iat = _number(claims, "exp"), _number(claims, "nbf"), _number(claims, "iat")
        assert exp is not None  # required by _decode
        if exp <= now:
            raise AuthError(f"token expired at {_when(exp)}")
        if nbf is not None and nbf > now:
            raise AuthError(f"token is not valid before {_when(nbf)} (nbf)")
        start = iat if iat is not None else nbf if nbf is not None else now
        if exp - start > cfg.max_ttl or exp - now > cfg.max_ttl:
            raise AuthError(f"token lifetime exceeds the maximum of {cfg.max_ttl}s (LEGION_JWT_MAX_TTL)")
        for name in ("jti", "iss"):  # registered claims are strings, checked or not
            if name in claims and not isinstance(claims[name], str):
                raise AuthError(f"token's {name!r} claim is {preview(claims[name])}; expected a string")
        jti = claims.get("jti")
        if self.revocations.revoked(jti):
            raise AuthError(f"token was revoked (jti {preview(jti)})")
        return claims

    def _decode(self, token: str, key: Any, alg: str) -> dict[str, Any]:
        cfg = self.config
        try:
            return dict(
                jwt.decode(
                    token,
                    key,
                    algorithms=[alg],
                    audience=cfg.audience,
                    issuer=cfg.issuer,
                    # exp/nbf/iat are checked by the caller: PyJWT takes numeric strings ("1700000000")
                    options={
                        "require": ["exp"] + (["iss"] if cfg.issuer else []) + ["aud"],
                        "verify_exp": False,
                        "verify_nbf": False,
                        "verify_iat": False,
                    },
                )
            )
        except jwt.InvalidAudienceError:
            raise AuthError(f"token audience is not {cfg.audience!r}") from None
        except jwt.InvalidIssuerError:
            raise AuthError(f"token issuer is not {cfg.issuer!r}") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"token lacks the required {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthError("token signature does not verify (tampered, or signed with another key)") from None
        except jwt.InvalidKeyError:
            raise AuthError(f"token cannot be verified with a key for {alg}") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from None

    def refresh_jwks(self) -> None:
        """Fetch the JWKS again (blocking: run it in a thread from async code); failures keep the old keys."""
        if self.jwks is not None:
            try:
                self.jwks.refresh()
            except (ConfigError, OSError) as exc:
                log.warning("JWKS refresh failed, keeping the keys we have: %s", exc)
