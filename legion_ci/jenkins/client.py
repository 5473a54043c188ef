"""The one class that talks to Jenkins, over python-jenkins. Errors become ExternalToolError or
NotFoundError naming the operation and the item; credentials never appear in them."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from importlib import import_module
from typing import Any, TypeVar

import requests

from legion_ci.core.errors import ConfigError, ExternalToolError, NotFoundError
from legion_ci.jenkins.credentials import ENV_TOKEN, ENV_USER, JenkinsCredentials

# python-jenkins, loaded by name: the repository's own jenkins/ folder (JCasC, templates) would otherwise
# shadow it for mypy as a namespace package.
jenkins: Any = import_module("jenkins")
FOLDER_CLASS = "com.cloudbees.hudson.plugins.folder.Folder"
T = TypeVar("T")


class JenkinsClient:
    """Folders, jobs and builds of one Jenkins server."""

    def __init__(self, credentials: JenkinsCredentials, timeout: float = 30.0) -> None:
        self.url = credentials.url.rstrip("/") + "/"
        self._secret = credentials.token or ""
        self._server = jenkins.Jenkins(self.url, username=credentials.user, password=credentials.token, timeout=timeout)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except jenkins.NotFoundException:
            raise NotFoundError(f"Jenkins at {self.url}: {what}: not found") from None
        except (jenkins.JenkinsException, requests.RequestException, OSError, ValueError) as exc:
            message = str(exc).replace(self._secret, "***") if self._secret else str(exc)
            refused = re.search(r"\[(401|403)\]", message)
            if refused:
                raise ConfigError(
                    f"Jenkins at {self.url} refused the login (HTTP {refused.group(1)}) while trying to {what}: "
                    f"check {ENV_USER} and {ENV_TOKEN} (or the credentials file) and the user's permissions"
                ) from None
            first = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
            raise ExternalToolError("jenkins", f"{what} at {self.url}", "error", first) from None

    def version(self) -> str:
        """The server's version; also proves the URL and the login work."""
        self._call("log in", lambda: self._server.get_whoami())
        return str(self._call("read the version", self._server.get_version))

    def exists(self, name: str) -> bool:
        return bool(self._call(f"look up {name!r}", lambda: self._server.job_exists(name)))

    def config(self, name: str) -> str | None:
        """The item's config.xml, or None when there is no such item."""
        if not self.exists(name):
            return None
        return str(self._call(f"read config.xml of {name!r}", lambda: self._server.get_job_config(name)))

    def create(self, name: str, xml: str) -> None:
        self._call(f"create {name!r}", lambda: self._server.create_job(name, xml))

    def reconfigure(self, name: str, xml: str) -> None:
        self._call(f"update {name!r}", lambda: self._server.reconfig_job(name, xml))

    def delete(self, name: str) -> None:
        self._call(f"delete {name!r}", lambda: self._server.delete_job(name))

    def children(self, folder: str | None = None) -> list[dict[str, Any]]:
        """The items directly in `folder` (top level when None): name, full name, class."""
        if folder is None:
            info = self._call("list top-level items", lambda: self._server.get_info())
        else:
            info = self._call(f"list {folder!r}", lambda: self._server.get_job_info(folder))
        prefix = f"{folder}/" if folder else ""
        return [
            {"name": j["name"], "full_name": prefix + j["name"], "class": j.get("_class", "")}
            for j in info.get("jobs", []) or []
        ]

    def job_info(self, name: str) -> dict[str, Any]:
        if not self.exists(name):
            raise NotFoundError(f"Jenkins at {self.url} has no job {name!r} (run `legion-ci jenkins sync` first)")
        return self._call(f"read job {name!r}", lambda: self._server.get_job_info(name))

    def build(self, name: str, params: dict[str, str]) -> int:
        """Queue a build; returns the queue item number."""
        return int(
            self._call(f"start a build of {name!r}", lambda: self._server.build_job(name, parameters=params or None))
        )

    def queue_item(self, number: int) -> dict[str, Any]:
        return self._call(f"read queue item {number}", lambda: self._server.get_queue_item(number))

    def build_info(self, name: str, number: int) -> dict[str, Any]:
        return self._call(f"read build {name} #{number}", lambda: self._server.get_build_info(name, number))

    def console(self, name: str, number: int) -> str:
        return str(
            self._call(
                f"read the console of {name} #{number}", lambda: self._server.get_build_console_output(name, number)
            )
        )


def description_of(xml: str) -> str:
    """The <description> of a config.xml ('' when absent or unreadable)."""
    try:
        root = ET.fromstring(xml.encode("utf-8"))
    except ET.ParseError:
        return ""
    node = root.find("description")
    return node.text or "" if node is not None else ""
