"""Every LEGION_* environment variable legion-ci reads, declared once: type, default, one line of help.

Precedence: default < environment < command line (the arguments of `load_settings`). A process reads
its settings once, at its entry (the CLI's main, the model server, the router, the API), and hands the
`Settings` down; nothing else in legion_ci reads a LEGION_* variable. A child process gets its settings
as environment variables built by `child_env`. docs/settings.md is generated from this class
(`python -m legion_ci.core.settings_doc`); a unit test fails when the committed page differs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, JsonValue, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from legion_ci.core.durations import parse_duration
from legion_ci.core.errors import ConfigError, SettingsError

PREFIX = "LEGION_"
REGISTRY_URL_EXPECTED = "an SQLAlchemy URL such as sqlite:///PATH or postgresql+psycopg://HOST/DB"
SERVER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SERVER_ID_EXPECTED = "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://\S*$")


def _matches(pattern: re.Pattern[str], expected: str) -> AfterValidator:
    def check(value: Any) -> Any:
        if value and not pattern.match(value):
            raise ValueError(expected)
        return value

    return AfterValidator(check)


def _seconds(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return parse_duration(value)
    except ConfigError:
        raise ValueError("not a duration") from None


def _float_seconds(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return _seconds(value)
    return value


def _strip_slash(value: Any) -> Any:
    return value.strip().rstrip("/") if isinstance(value, str) else value


STORE_URL_EXPECTED = "a folder path or a URL such as s3://BUCKET/PREFIX"
_LOCAL_SCHEMES = frozenset({"file", "local", "memory"})


def _store_url(value: Any) -> Any:
    """A folder, or a URL whose scheme fsspec knows and which names its bucket (s3://BUCKET/...)."""
    if not isinstance(value, str):
        return value
    if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]+:$", value):  # "s3://" with its slashes stripped
        value += "//"
    if "://" not in value:
        return value
    scheme, _, rest = value.partition("://")
    from fsspec.registry import known_implementations  # only when a URL is given

    if scheme.lower() not in known_implementations:
        raise ValueError(f"{STORE_URL_EXPECTED}; unknown scheme {scheme!r}")
    if scheme.lower() not in _LOCAL_SCHEMES and not rest.split("/", 1)[0]:
        raise ValueError(f"{STORE_URL_EXPECTED}; no bucket after {scheme}://")
    return value


def setting(
    default: Any,
    description: str,
    section: str,
    expected: str,
    internal: bool = False,
    flag: str | None = None,
    **constraints: Any,
) -> Any:
    """A field with its doc line, its section in docs/settings.md and what a bad value is told it expected.
    `internal` marks a variable legion-ci sets for its own child processes (never inherited by theirs);
    `flag` is the command-line option that overrides it when not `--FIELD-NAME`."""
    extra: dict[str, JsonValue] = {"section": section, "expected": expected, "internal": internal}
    if flag:
        extra["flag"] = flag
    return Field(default, description=description, json_schema_extra=extra, **constraints)


SECTIONS = {
    "state": "State: where the registry, artifacts and runs live",
    "run": "Run options: the choices of one pipeline run (Jenkins build parameters)",
    "auth": "Auth: JWT bearer tokens for model servers and the management API",
    "serving": "Serving and routing",
    "package": "Packaging: the model image",
    "jenkins": "Jenkins: rendering jobs",
    "deploy": "Deploying",
    "internal": "Internal: set by legion-ci for its own child processes",
}


class Settings(BaseSettings):
    """legion-ci's configuration. Field `x` is the environment variable `LEGION_X`."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        case_sensitive=False,
        env_ignore_empty=True,  # LEGION_X= (empty) means unset, as Jenkins passes empty build parameters
        extra="ignore",
        frozen=True,
        validate_default=False,
    )

    # state
    home: Path = setting(
        Path("~/.legion"), "the state folder: registry (SQLite), artifacts, runs, deployments", "state", "a folder path"
    )
    registry_url: Annotated[str, _matches(URL, REGISTRY_URL_EXPECTED)] = setting(
        "",
        "SQLAlchemy URL of the registry; default SQLite at $LEGION_HOME/registry.db",
        "state",
        REGISTRY_URL_EXPECTED,
    )
    store_url: Annotated[str | None, BeforeValidator(_strip_slash), AfterValidator(_store_url)] = setting(
        None,
        "the artifact store: a folder, or s3://BUCKET/PREFIX on any S3-compatible service (endpoint and "
        "credentials from the standard AWS variables and config, AWS_ENDPOINT_URL included); default $LEGION_HOME "
        "(`--store URL` on the commands that use it)",
        "state",
        STORE_URL_EXPECTED,
        flag="--store",
    )

    # run options
    target: Literal["local", "kubernetes"] | None = setting(
        None, "deploy target of this run, overriding legion.yaml's deploy.target", "run", "local or kubernetes"
    )
    traffic_weight: int | None = setting(
        None,
        "percent of traffic the new version gets first, overriding legion.yaml's deploy.traffic_weight",
        "run",
        "a whole number from 1 to 100",
        ge=1,
        le=100,
        strict=False,
    )
    skip_perf_reason: str | None = setting(
        None, "skip the perf stage of this run, recording this reason", "run", "a sentence"
    )
    force_reason: str | None = setting(
        None, "deploy although the gate failed, recording this reason", "run", "a sentence"
    )

    # auth
    auth: bool = setting(
        True, "off: model servers accept requests without a token (the demo; `serve --no-auth`)", "auth", "on or off"
    )
    jwt_secret: SecretStr | None = setting(
        None,
        "the HS256 secret; else LEGION_JWT_SECRET_FILE, else $LEGION_HOME/secrets/jwt-hs256.key",
        "auth",
        "a string",
    )
    jwt_secret_file: Path | None = setting(None, "a file holding the HS256 secret", "auth", "a file path")
    jwks: str | None = setting(
        None,
        "a JWKS file path or http(s) URL (an OIDC provider's jwks_uri) for RS/ES/PS tokens",
        "auth",
        "a path or URL",
    )
    jwt_issuer: str | None = setting(
        None, "the `iss` every token must carry and every minted token gets; unset: not checked", "auth", "a string"
    )
    jwt_audience: str = setting("legion-ci", "the `aud` of model-server tokens", "auth", "a string")
    api_audience: str = setting(
        "legion-ci-management", "the `aud` of management-API tokens (never the model servers')", "auth", "a string"
    )
    jwt_max_ttl: Annotated[int, BeforeValidator(_seconds)] = setting(
        86400,
        "the longest lifetime a token may have: seconds, or e.g. 30m, 12h, 7d",
        "auth",
        "a duration such as 3600, 90s, 30m, 12h or 7d",
        gt=0,
    )
    jwt_revoked: Path | None = setting(
        None, "a file of revoked `jti`s: a JSON array, or one per line (# comments)", "auth", "a file path"
    )

    # serving and routing
    serve_slim: bool = setting(
        True,
        "off: the model server keeps scikit-learn loaded instead of re-executing as a slim numpy server",
        "serving",
        "on or off",
    )
    http_max_header_bytes: int = setting(
        32768,
        "the request line and headers of one request may not pass this many bytes (431 and close)",
        "serving",
        "a whole number of bytes from 1024",
        ge=1024,
        strict=False,
    )
    http_request_timeout: float = setting(
        30.0,
        "seconds a request (headers and body) may take to arrive after its first byte (408 and close)",
        "serving",
        "a positive number of seconds",
        gt=0,
        strict=False,
    )
    http_idle_timeout: float = setting(
        10.0,
        "seconds a new connection may wait before it starts a request (then it is closed)",
        "serving",
        "a positive number of seconds",
        gt=0,
        strict=False,
    )
    http_max_connections: int = setting(
        1000,
        "open connections per server process (model server, management API, router); one more gets 503",
        "serving",
        "a whole number from 1",
        ge=1,
        strict=False,
    )
    ship_interval: Annotated[float, BeforeValidator(_float_seconds)] = setting(
        30.0,
        "model servers ship capture segments to the store at least this often (`serve --ship-interval`): "
        "seconds, or e.g. 30s, 5m",
        "serving",
        "a duration such as 30, 30s or 5m",
        gt=0,
        strict=False,
    )
    ship_shutdown_timeout: Annotated[float, BeforeValidator(_float_seconds)] = setting(
        20.0,
        "what a model server's graceful stop may spend, after draining requests (up to 10 s), closing and "
        "shipping its capture; a segment not shipped by then stays on disk and ships at the next start. Keep "
        "drain + this under the pod's terminationGracePeriodSeconds (the chart's default 45 s): seconds, or e.g. 20s",
        "serving",
        "a duration such as 20 or 20s",
        gt=0,
        strict=False,
    )
    server_id: Annotated[str | None, _matches(SERVER_ID, SERVER_ID_EXPECTED)] = setting(
        None,
        "this model server's id in the store (`<store>/feedback/NAME/<server id>/`); default the host name "
        "(a pod's name)",
        "serving",
        SERVER_ID_EXPECTED,
    )
    router_port: int | None = setting(
        None,
        "port of the local router (default: the last one used, 8000, or a free one; 0: any free one)",
        "serving",
        "a port from 0 to 65535",
        ge=0,
        le=65535,
    )
    router_sticky_header: str | None = setting(
        None,
        "request header whose value pins a caller to one version while the weights stand (e.g. X-User-ID); "
        "requests without it are shared by weight",
        "serving",
        "an HTTP header name",
        pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
    )
    router_sticky_cookie: str | None = setting(
        None,
        "cookie whose value pins a caller to one version (used when the sticky header is absent)",
        "serving",
        "a cookie name",
        pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
    )
    router_shadow_timeout: float = setting(
        5.0,
        "seconds the router waits for a shadow (mirrored) answer before giving it up; the caller never waits",
        "serving",
        "a positive number of seconds",
        gt=0,
        strict=False,
    )

    # packaging
    base_image: Annotated[str, BeforeValidator(str.strip)] = setting(
        "python:3.11-slim", "base image of model images", "package", "an image reference such as python:3.11-slim"
    )
    image_registry: Annotated[str | None, BeforeValidator(_strip_slash)] = setting(
        None,
        "where `image build --push` and the package stage push",
        "package",
        "host[:port][/path] without a scheme or credentials, e.g. 127.0.0.1:5000",
    )
    source_url: str | None = setting(
        None, "the source repository recorded in the image's labels (default: Jenkins' GIT_URL)", "package", "a URL"
    )
    build_ca_bundle: Path | None = setting(
        None,
        "a PEM CA bundle pip trusts in the image's build stage only (a TLS-inspecting proxy)",
        "package",
        "a PEM file",
    )
    pip_index_url: str | None = setting(
        None,
        "pip's index in the image's build stage only (a PyPI mirror; default PIP_INDEX_URL)",
        "package",
        "an http(s) URL",
    )
    ci_wheel: Path | None = setting(
        None,
        "a prebuilt legion_ci-*.whl to install in images (default: built from this source tree)",
        "package",
        "a wheel file",
    )
    registry_user: str | None = setting(
        None,
        "image registry login for the push; with LEGION_REGISTRY_PASSWORD, never in images or logs",
        "package",
        "a user name",
    )
    registry_password: SecretStr | None = setting(
        None, "image registry password for the push; with LEGION_REGISTRY_USER", "package", "a string"
    )

    # jenkins
    scm_url: str | None = setting(
        None,
        "git URL of the model repository the rendered jobs check out (default: the checkout's origin)",
        "jenkins",
        "a git URL",
    )
    scm_branch: str = setting("main", "branch the rendered jobs build", "jenkins", "a branch name")
    scm_credentials_id: str = setting(
        "legion-git", "Jenkins credentials id the rendered jobs check out with", "jenkins", "a credentials id"
    )

    # deploy
    ansible_dir: Path | None = setting(
        None, "the ansible/ folder to deploy with (default: the one legion-ci ships)", "deploy", "a folder path"
    )
    jwt_existing_secret: str | None = setting(
        None,
        "kubernetes target: the name of an existing Secret holding the JWT secret (instead of the chart creating one)",
        "deploy",
        "a Kubernetes Secret name",
    )
    store_secret: str | None = setting(
        None,
        "kubernetes target: the Secret (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optionally AWS_ENDPOINT_URL) the "
        "model pods reach LEGION_STORE_URL with; unset: the pods' own AWS identity",
        "deploy",
        "a Kubernetes Secret name",
    )
    gateway_release: str | None = setting(
        None,
        "kubernetes target: the legion-platform Helm release (gateway.enabled) whose Gateway API HTTPRoutes "
        "split each model's traffic; unset: the platform's Python router splits it",
        "deploy",
        "a Helm release name",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length=53,
    )
    gateway_namespace: str = setting(
        "legion", "kubernetes target: the namespace of the Gateway release", "deploy", "a Kubernetes namespace name"
    )

    # internal: the contract with child processes
    model_dir: Path | None = setting(
        None, "train.py's model folder (also the model folder in rendered Jenkinsfiles)", "internal", "a folder", True
    )
    train_output: Path | None = setting(None, "where train.py's export goes", "internal", "a folder", True)
    extra_data: str | None = setting(
        None,
        "extra data files train.py appends (os.pathsep-separated; the feedback loop's export)",
        "internal",
        "paths",
        True,
    )
    test_artifact: Path | None = setting(
        None, "the candidate artifact a model's own tests get", "internal", "a folder", True
    )
    test_production_artifact: Path | None = setting(
        None, "production's artifact a model's own tests get", "internal", "a folder", True
    )
    perf_invoke_path: str | None = setting(None, "the path the perf locustfile posts to", "internal", "a path", True)
    perf_examples: str | None = setting(
        None, "the example rows the perf locustfile posts (JSON)", "internal", "JSON", True
    )
    perf_token: SecretStr | None = setting(
        None, "the bearer token of the perf load (environment only: never argv or a file)", "internal", "a token", True
    )
    router_state: Path | None = setting(
        None, "the state file that must keep naming a started router for it to keep running", "internal", "a file", True
    )

    @model_validator(mode="after")
    def _resolve_home(self) -> Settings:
        home = self.home.expanduser().resolve()
        object.__setattr__(self, "home", home)
        if not self.registry_url:
            object.__setattr__(self, "registry_url", f"sqlite:///{home / 'registry.db'}")
        return self

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def deployments_dir(self) -> Path:
        return self.home / "deployments"

    @property
    def feedback_dir(self) -> Path:
        return self.home / "feedback"

    @property
    def jwt_secret_value(self) -> str | None:
        return self.jwt_secret.get_secret_value() if self.jwt_secret else None


def env_name(field: str) -> str:
    """The environment variable of a Settings field: traffic_weight -> LEGION_TRAFFIC_WEIGHT."""
    return PREFIX + field.upper()


def _flag(field: str) -> str:
    info = Settings.model_fields.get(field)
    extra = info.json_schema_extra if info is not None and isinstance(info.json_schema_extra, dict) else {}
    return str(extra.get("flag") or "--" + field.replace("_", "-"))


def load_settings(home: str | Path | None = None, registry_url: str | None = None, **overrides: Any) -> Settings:
    """Defaults < environment < the arguments (command-line values; None means not given).

    A bad value raises SettingsError naming the variable (or flag), the value and what was expected."""
    given = {k: v for k, v in {"home": home, "registry_url": registry_url, **overrides}.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise _settings_error(exc, given) from None


def _settings_error(exc: ValidationError, given: dict[str, Any]) -> SettingsError:
    """Every bad setting of one reading, the first one's fields on the error itself."""
    problems = []
    seen: set[str] = set()
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        if field in seen:
            continue
        seen.add(field)
        info = Settings.model_fields.get(field)
        extra = info.json_schema_extra if info is not None and isinstance(info.json_schema_extra, dict) else {}
        expected = str(extra.get("expected") or error["msg"])
        secret = info is not None and "SecretStr" in str(info.annotation)
        if field in given:
            name, value = _flag(field), given[field]
        else:
            name, value = env_name(field), _environment_value(env_name(field))
        reason = str(error.get("ctx", {}).get("error") or "") if error["type"] == "value_error" else ""
        if reason.startswith(expected):  # a validator that says which part is wrong
            expected = reason
        problems.append(SettingsError(name, "***" if secret else str(value), expected))
    first = problems[0]
    return SettingsError(first.variable, first.value, first.expected, problems[1:])


def _environment_value(name: str) -> str | None:
    """The variable as set, in any letter case (the names are matched case-insensitively)."""
    if name in os.environ:
        return os.environ[name]
    return next((v for k, v in os.environ.items() if k.upper() == name), None)


def _as_env(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value)


def child_env(settings: Settings, **internal: Any) -> dict[str, str]:
    """The environment that gives a child process these settings: every public setting that is set, plus
    the `internal` ones named (field=value). Passed on top of the parent's environment."""
    env: dict[str, str] = {}
    for field, info in Settings.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        value = getattr(settings, field)
        if extra.get("internal") or value is None:
            continue
        env[env_name(field)] = _as_env(value)
    for field, value in internal.items():
        if field not in Settings.model_fields:
            raise KeyError(f"{field} is not a setting")
        if value is not None:
            env[env_name(field)] = _as_env(value)
    return env
