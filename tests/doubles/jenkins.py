"""JenkinsDouble: a stateful stand-in for the Jenkins REST endpoints python-jenkins uses.

A real HTTP server on 127.0.0.1 (a free port), in a thread. It keeps folders, jobs (their config.xml
as posted), a build queue and builds, checks HTTP Basic auth and the CSRF crumb on every POST, and
refuses malformed XML the way Jenkins does (500). What it does NOT do is listed in docs/jenkins.md
("What the test double does not do"): it runs no Groovy, so a build's stages, result and console are
scripted by the test (`outcome`), not executed.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

FOLDER_CLASS = "com.cloudbees.hudson.plugins.folder.Folder"
JOB_CLASS = "org.jenkinsci.plugins.workflow.job.WorkflowJob"
RUN_CLASS = "org.jenkinsci.plugins.workflow.job.WorkflowRun"
VERSION = "2.462.3"
CRUMB_FIELD = "Jenkins-Crumb"


@dataclass
class Build:
    number: int
    params: dict[str, str]
    result: str
    console_lines: list[str]
    polls_left: int  # build-info reads before it finishes: a deterministic 'running' phase
    shown: int = 1

    @property
    def building(self) -> bool:
        return self.polls_left > 0


@dataclass
class Item:
    full_name: str
    config: str
    is_folder: bool
    builds: list[Build] = field(default_factory=list)
    next_build: int = 1

    @property
    def name(self) -> str:
        return self.full_name.rpartition("/")[2]

    def param_defaults(self) -> dict[str, str]:
        out: dict[str, str] = {}
        root = ET.fromstring(self.config.encode("utf-8"))
        for node in root.iter():
            if node.tag.endswith("ParameterDefinition"):
                name = node.findtext("name") or ""
                default = node.findtext("defaultValue")
                if default is None:
                    choices = node.find("choices")
                    first = choices.find(".//string") if choices is not None else None
                    default = first.text if first is not None else ""
                out[name] = default or ""
        return out


@dataclass
class QueueEntry:
    id: int
    job: str
    params: dict[str, str]
    polls_left: int
    build: int | None = None


class JenkinsDouble:
    """Start with `with JenkinsDouble(user, token) as jenkins:`; `jenkins.url` is its address."""

    def __init__(
        self, user: str = "admin", token: str = "s3cret-token", queue_polls: int = 1, build_polls: int = 2
    ) -> None:
        self.user, self.token = user, token
        self.queue_polls, self.build_polls = queue_polls, build_polls
        self.items: dict[str, Item] = {}
        self.queue: dict[int, QueueEntry] = {}
        self.requests: list[tuple[str, str, bytes]] = []  # method, path, body: what clients sent
        self.outcome: dict[str, str] = {}  # job full name -> result its next builds end with
        self.crumb = "crumb-7f3a"
        self._next_queue = 1
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/" if isinstance(host, str) else f"http://127.0.0.1:{port}/"

    def __enter__(self) -> JenkinsDouble:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    # -- state helpers for tests -------------------------------------------------------------------
    def posts(self) -> list[tuple[str, str, bytes]]:
        return [r for r in self.requests if r[0] == "POST"]

    def add_item(self, full_name: str, config: str) -> None:
        with self._lock:
            self.items[full_name] = Item(full_name, config, _is_folder(config))

    # -- HTTP -------------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no 40 ms Nagle/delayed-ACK stall between headers and body

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                double._dispatch(self, "GET")

            def do_POST(self) -> None:
                double._dispatch(self, "POST")

        return Handler

    def _dispatch(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        parts = urlsplit(h.path)
        path, query = parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))
        with self._lock:
            self.requests.append((method, h.path, body))
            if not self._authorized(h):
                return _send(h, 401, "Unauthorized: bad user or API token", "text/plain")
            if method == "POST" and h.headers.get(CRUMB_FIELD) != self.crumb:
                return _send(h, 403, "No valid crumb was included in the request", "text/plain")
            try:
                status, payload, ctype, headers = self._route(method, path, query, body)
            except _HttpError as err:
                status, payload, ctype, headers = err.status, err.message, "text/plain", {}
        _send(h, status, payload, ctype, headers)

    def _authorized(self, h: BaseHTTPRequestHandler) -> bool:
        auth = h.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return False
        user, _, token = base64.b64decode(auth[6:]).decode("utf-8").partition(":")
        return user == self.user and token == self.token

    def _route(
        self, method: str, path: str, query: dict[str, str], body: bytes
    ) -> tuple[int, str, str, dict[str, str]]:
        if method == "GET" and path == "/":
            return 200, "<html>Jenkins double</html>", "text/html", {"X-Jenkins": VERSION}
        if method == "GET" and path == "/crumbIssuer/api/json":
            return _json(
                {
                    "_class": "hudson.security.csrf.DefaultCrumbIssuer",
                    "crumb": self.crumb,
                    "crumbRequestField": CRUMB_FIELD,
                }
            )
        if method == "GET" and path.startswith("/me/api/json"):
            return _json({"_class": "hudson.model.User", "id": self.user, "fullName": self.user})
        if method == "GET" and path == "/api/json":
            return _json({"_class": "hudson.model.Hudson", "jobs": self._children(None)})
        m = re.fullmatch(r"/queue/item/(\d+)/api/json", path)
        if m and method == "GET":
            return _json(self._queue_item(int(m[1])))
        m = re.fullmatch(r"((?:/job/[^/]+)*)/createItem", path)
        if m and method == "POST":
            return self._create(_folder_of(m[1]), query, body)
        m = re.fullmatch(r"((?:/job/[^/]+)+)(/.*)?", path)
        if not m:
            raise _HttpError(404, f"no such page {path}")
        name, rest = _name_of(m[1]), m[2] or "/"
        item = self.items.get(name)
        if item is None:
            raise _HttpError(404, f"no item {name}")
        return self._item_route(method, item, rest, query, body)

    def _item_route(
        self, method: str, item: Item, rest: str, query: dict[str, str], body: bytes
    ) -> tuple[int, str, str, dict[str, str]]:
        if rest == "/api/json" and method == "GET":
            return _json(self._item_json(item))
        if rest == "/config.xml" and method == "GET":
            return 200, item.config, "application/xml", {}
        if rest == "/config.xml" and method == "POST":
            _check_xml(body)
            item.config = body.decode("utf-8")
            return 200, "", "text/plain", {}
        if rest == "/doDelete" and method == "POST":
            for key in [k for k in self.items if k == item.full_name or k.startswith(item.full_name + "/")]:
                del self.items[key]
            return 200, "", "text/plain", {}
        if rest in ("/build", "/buildWithParameters") and method == "POST":
            return self._enqueue(item, query)
        m = re.fullmatch(r"/(\d+)/(api/json|consoleText)", rest)
        if m and method == "GET":
            build = next((b for b in item.builds if b.number == int(m[1])), None)
            if build is None:
                raise _HttpError(404, f"{item.full_name} has no build #{m[1]}")
            if m[2] == "consoleText":
                return 200, "\n".join(build.console_lines[: build.shown]) + "\n", "text/plain", {}
            return _json(self._build_json(item, build, advance=True))
        raise _HttpError(404, f"no such page {rest} on {item.full_name}")

    def _create(self, folder: str | None, query: dict[str, str], body: bytes) -> tuple[int, str, str, dict[str, str]]:
        name = query.get("name", "")
        if not name:
            raise _HttpError(400, "Query parameter 'name' is required")
        if folder is not None and (folder not in self.items or not self.items[folder].is_folder):
            raise _HttpError(404, f"no folder {folder}")
        full = f"{folder}/{name}" if folder else name
        if full in self.items:
            raise _HttpError(400, f"A job already exists with the name '{name}'")
        if query.get("mode") == FOLDER_CLASS:
            config = f"<?xml version='1.1' encoding='UTF-8'?><{FOLDER_CLASS}/>"
        else:
            _check_xml(body)
            config = body.decode("utf-8")
        self.items[full] = Item(full, config, _is_folder(config))
        return 200, "", "text/plain", {}

    def _enqueue(self, item: Item, query: dict[str, str]) -> tuple[int, str, str, dict[str, str]]:
        if item.is_folder:
            raise _HttpError(405, f"{item.full_name} is a folder")
        params = item.param_defaults()
        params.update({k: v for k, v in query.items() if k in params})  # Jenkins drops undefined ones
        qid = self._next_queue
        self._next_queue += 1
        self.queue[qid] = QueueEntry(qid, item.full_name, params, self.queue_polls)
        return 201, "", "text/plain", {"Location": f"{self.url}queue/item/{qid}/"}

    def _queue_item(self, qid: int) -> dict[str, Any]:
        entry = self.queue.get(qid)
        if entry is None:
            raise _HttpError(404, f"no queue item {qid}")
        data: dict[str, Any] = {
            "_class": "hudson.model.Queue$WaitingItem",
            "id": qid,
            "cancelled": False,
            "task": {"name": entry.job.rpartition("/")[2]},
            "params": _params_text(entry.params),
        }
        if entry.build is None and entry.polls_left > 0:
            entry.polls_left -= 1
            data["why"] = "Waiting for next available executor"
            return data
        if entry.build is None:
            entry.build = self._start(entry)
        item = self.items[entry.job]
        data["_class"] = "hudson.model.Queue$LeftItem"
        data["executable"] = {"_class": RUN_CLASS, "number": entry.build, "url": f"{self._job_url(item)}{entry.build}/"}
        return data

    def _start(self, entry: QueueEntry) -> int:
        item = self.items[entry.job]
        number = item.next_build
        item.next_build += 1
        result = self.outcome.get(entry.job, "SUCCESS")
        stages = re.findall(r"<scriptPath>(.*?)</scriptPath>", item.config)
        lines = [
            f"Started by user {self.user}",
            f"Obtained {stages[0] if stages else 'Jenkinsfile'} from git",
            *(f"  {k}={v}" for k, v in sorted(entry.params.items())),
            "[Pipeline] Start of Pipeline (simulated by JenkinsDouble: no Groovy runs here)",
            f"Finished: {result}",
        ]
        item.builds.insert(0, Build(number, entry.params, result, lines, self.build_polls))
        return number

    def _build_json(self, item: Item, build: Build, advance: bool) -> dict[str, Any]:
        if advance and build.polls_left > 0:
            build.polls_left -= 1
            build.shown = min(len(build.console_lines) - 1, build.shown + 2)
        if not build.building:
            build.shown = len(build.console_lines)
        return {
            "_class": RUN_CLASS,
            "number": build.number,
            "building": build.building,
            "result": None if build.building else build.result,
            "timestamp": 1_700_000_000_000 + build.number * 60_000,
            "duration": 0 if build.building else 42_000,
            "url": f"{self._job_url(item)}{build.number}/",
            "displayName": f"#{build.number}",
            "actions": [
                {
                    "_class": "hudson.model.ParametersAction",
                    "parameters": [{"name": k, "value": v} for k, v in sorted(build.params.items())],
                }
            ],
        }

    def _job_url(self, item: Item) -> str:
        return self.url + "".join(f"job/{p}/" for p in item.full_name.split("/"))

    def _children(self, folder: str | None) -> list[dict[str, Any]]:
        out = []
        for name, item in sorted(self.items.items()):
            parent = name.rpartition("/")[0] or None
            if parent == folder:
                entry: dict[str, Any] = {
                    "_class": FOLDER_CLASS if item.is_folder else JOB_CLASS,
                    "name": item.name,
                    "url": self._job_url(item),
                }
                if item.is_folder:
                    entry["jobs"] = self._children(name)
                else:
                    entry["color"] = "notbuilt" if not item.builds else "blue"
                out.append(entry)
        return out

    def _item_json(self, item: Item) -> dict[str, Any]:
        description = ""
        try:
            description = ET.fromstring(item.config.encode("utf-8")).findtext("description") or ""
        except ET.ParseError:
            pass
        data: dict[str, Any] = {
            "_class": FOLDER_CLASS if item.is_folder else JOB_CLASS,
            "name": item.name,
            "fullName": item.full_name,
            "url": self._job_url(item),
            "description": description,
        }
        if item.is_folder:
            data["jobs"] = self._children(item.full_name)
            return data
        refs = [
            {"_class": RUN_CLASS, "number": b.number, "url": f"{self._job_url(item)}{b.number}/"} for b in item.builds
        ]
        data.update(
            {
                "builds": refs,
                "firstBuild": refs[-1] if refs else None,
                "lastBuild": refs[0] if refs else None,
                "nextBuildNumber": item.next_build,
                "buildable": True,
                "inQueue": False,
                "color": "notbuilt" if not refs else "blue",
            }
        )
        return data


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _json(data: Any) -> tuple[int, str, str, dict[str, str]]:
    return 200, json.dumps(data), "application/json", {}


def _send(
    h: BaseHTTPRequestHandler, status: int, payload: str, ctype: str, headers: dict[str, str] | None = None
) -> None:
    data = payload.encode("utf-8")
    h.send_response(status)
    h.send_header("Content-Type", f"{ctype};charset=utf-8")
    h.send_header("Content-Length", str(len(data)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(data)


def _name_of(job_path: str) -> str:
    return "/".join(unquote(p) for p in job_path.split("/job/")[1:])


def _folder_of(job_path: str) -> str | None:
    return _name_of(job_path) or None


def _is_folder(config: str) -> bool:
    try:
        return ET.fromstring(config.encode("utf-8")).tag == FOLDER_CLASS
    except ET.ParseError:
        return False


def _check_xml(body: bytes) -> None:
    try:
        ET.fromstring(body)
    except ET.ParseError as exc:
        raise _HttpError(500, f"Failed to parse config.xml: {exc}") from None


def _params_text(params: dict[str, str]) -> str:
    return "".join(f"\n{k}={v}" for k, v in sorted(params.items()))
