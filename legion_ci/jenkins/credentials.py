"""Where `legion-ci jenkins` finds its server and login: a file, then the environment; never argv.

Precedence (lowest first): `--credentials-file` (INI with a [jenkins] section, as jenkins-job-builder
reads, or YAML with a `jenkins:` mapping or top-level keys), then JENKINS_URL / JENKINS_USER /
JENKINS_TOKEN, then `--url` (the URL only: it is not a secret). The token is never printed.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from legion_ci.core.errors import ConfigError

ENV_URL, ENV_USER, ENV_TOKEN = "JENKINS_URL", "JENKINS_USER", "JENKINS_TOKEN"


@dataclass(frozen=True)
class JenkinsCredentials:
    url: str
    user: str | None = None
    token: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"JenkinsCredentials(url={self.url!r}, user={self.user!r}, token={'***' if self.token else None})"


def _read_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise ConfigError(f"--credentials-file {str(path)!r} does not exist (expected an INI or YAML file)")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            data: Any = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if isinstance(data, dict) and isinstance(data.get("jenkins"), dict):
            data = data["jenkins"]
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping with url, user and token")
        return {str(k): str(v) for k, v in data.items() if v is not None}
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        raise ConfigError(f"{path}: not a valid INI file: {exc}") from None
    if not parser.has_section("jenkins"):
        raise ConfigError(f"{path}: no [jenkins] section (expected url=, user= and token= or password= in it)")
    return dict(parser.items("jenkins"))


def load_credentials(file: str | Path | None = None, url: str | None = None) -> JenkinsCredentials:
    """Merge file < environment < `url`; the URL is required, user and token go together."""
    values: dict[str, str] = {}
    if file:
        raw = _read_file(Path(file))
        values = {
            "url": raw.get("url", ""),
            "user": raw.get("user") or raw.get("username", ""),
            "token": raw.get("token") or raw.get("password", ""),
        }
        unknown = sorted(set(raw) - {"url", "user", "username", "token", "password", "query_plugins_info", "timeout"})
        if unknown:
            raise ConfigError(f"{file}: unknown key(s) {', '.join(unknown)} (expected url, user, token)")
    for key, env in (("url", ENV_URL), ("user", ENV_USER), ("token", ENV_TOKEN)):
        if os.environ.get(env):
            values[key] = os.environ[env]
    if url:
        values["url"] = url
    final_url = values.get("url", "").strip()
    if not final_url:
        raise ConfigError(f"no Jenkins URL: set {ENV_URL}, pass --url, or give --credentials-file with url= in it")
    if not final_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"Jenkins URL {final_url!r} is not an http(s) URL (expected e.g. https://jenkins.example.com/)"
        )
    user, token = values.get("user") or None, values.get("token") or None
    if bool(user) != bool(token):
        missing = ENV_TOKEN if user else ENV_USER
        raise ConfigError(
            f"Jenkins user and token go together: {missing} (or its key in the credentials file) is missing"
        )
    return JenkinsCredentials(final_url, user, token)
