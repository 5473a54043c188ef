"""The model server as a raw ASGI app: exact-path routing, validated input, JWT, capture and metrics.

Endpoints (NAME and VERSION are the artifact's; other names answer 404):
  POST /api/model/NAME/VERSION/invoke     rows in, predictions (and probabilities) out
  POST /api/model/NAME/VERSION/feedback   ground truth for an earlier request id
  GET  /api/model/NAME/VERSION/info       schema, example, lineage
  POST /v2/models/NAME[/versions/VERSION]/infer, GET /v2/models/NAME[...], /v2/health/*: Open Inference
  GET  /health/live, /health/ready, /metrics, /openapi.json
Every answer carries X-Model-Name, X-Model-Version and X-Request-ID.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from legion_ci import __version__
from legion_ci.asgi.http import BodyTooLarge, ClientGone, dumps, header, read_body, respond
from legion_ci.asgi.lifespan import run_lifespan
from legion_ci.asgi.request_id import REQUEST_ID_CHARS, request_id_for, valid_request_id
from legion_ci.asgi.types import Receive, Scope, Send
from legion_ci.auth.jwt import AuthConfig, Authenticator, AuthError, NeedsRefresh
from legion_ci.core.artifact import Artifact
from legion_ci.core.errors import preview
from legion_ci.core.settings import Settings
from legion_ci.core.store import Store
from legion_ci.feedback.capture import CaptureWriter, store_dir
from legion_ci.feedback.index import UNKNOWN_ROWS
from legion_ci.feedback.labels import LabelError, Target
from legion_ci.feedback.ship import Shipper, server_id
from legion_ci.serving import v2
from legion_ci.serving.metrics import CONTENT_TYPE, Metrics
from legion_ci.serving.openapi import build_openapi
from legion_ci.serving.options import ServeOptions
from legion_ci.serving.predictor import Predictor
from legion_ci.serving.validation import InputError, Rows, Validator, parse_json

log = logging.getLogger(__name__)
LINEAGE_FIELDS = {
    "git",
    "source_fingerprint",
    "metrics",
    "params",
    "packages",
    "jenkins",
    "created_at",
    "seed",
    "run_id",
}

Handler = Callable[[Scope, Receive, str], Awaitable[tuple[int, bytes, list[tuple[bytes, bytes]]]]]


@dataclass(frozen=True)
class Route:
    endpoint: str
    methods: dict[str, Handler]
    protected: bool


class ModelApp:
    """One artifact served over HTTP. Build with `create_app`."""

    def __init__(
        self, artifact: Artifact, options: ServeOptions, settings: Settings, predictor: Predictor | None = None
    ) -> None:
        self.artifact = artifact
        self.options = options
        self.name, self.version = artifact.name, artifact.version
        schema = artifact.schema
        self.features = list(schema.features)
        self.validator = Validator(self.features, options.max_rows, schema.allow_nan)
        self.predictor = predictor or Predictor.for_model(
            artifact.model, self.features, list(schema.example), self.validator.numeric
        )
        self.classes = artifact.manifest.model.classes
        exported = artifact.manifest.model
        self.target = Target.of(exported.task, exported.classes, exported.target, f"model {self.name}")
        self.auth = Authenticator(AuthConfig.from_settings(settings, options.auth), self.name, self.version)
        self.auth_enabled = self.auth.config.enabled
        commit = artifact.manifest.git.commit
        self.metrics = Metrics(self.name, self.version, artifact.id, commit)
        self.capture_on = options.capture and options.capture_rate > 0
        self.store = store_dir(settings.feedback_dir, self.name)
        self.writer: CaptureWriter | None = None
        self.server_id = server_id(settings)
        self.shutdown_seconds = settings.ship_shutdown_timeout
        self.shipper = Shipper(
            self.store,
            self.name,
            Store.from_settings(settings).url,
            self.server_id,
            options.ship_interval,
            self.metrics.shipped_child.inc,
            self.metrics.ship_errors_child.inc,
        )
        self.ready = False
        self.headers = [(b"x-model-name", self.name.encode()), (b"x-model-version", self.version.encode())]
        self.openapi = dumps(build_openapi(artifact, self.features, self.auth_enabled, options, self.target))
        self.routes = self._routes()

    # -- routing -------------------------------------------------------------------------------------
    def _routes(self) -> dict[str, Route]:
        n, v = self.name, self.version
        api = f"/api/model/{n}/{v}"
        routes = {
            f"{api}/invoke": Route("invoke", {"POST": self.invoke}, True),
            f"{api}/feedback": Route("feedback", {"POST": self.feedback}, True),
            f"{api}/info": Route("info", {"GET": self.info}, True),
            "/health/live": Route("health", {"GET": self.live}, False),
            "/health/ready": Route("health", {"GET": self.ready_check}, False),
            "/metrics": Route("metrics", {"GET": self.prometheus}, False),
            "/openapi.json": Route("openapi", {"GET": self.openapi_doc}, False),
            "/v2": Route("v2_server", {"GET": self.v2_server}, False),
            "/v2/health/live": Route("health", {"GET": self.live}, False),
            "/v2/health/ready": Route("health", {"GET": self.ready_check}, False),
        }
        for base in (f"/v2/models/{n}", f"/v2/models/{n}/versions/{v}"):
            routes[base] = Route("v2_metadata", {"GET": self.v2_metadata}, True)
            routes[f"{base}/ready"] = Route("health", {"GET": self.ready_check}, False)
            routes[f"{base}/infer"] = Route("infer", {"POST": self.infer}, True)
        return routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        await run_lifespan(receive, send, self._on_startup, self._on_shutdown)

    async def _on_startup(self) -> None:
        self.startup(asyncio.get_running_loop())

    async def _on_shutdown(self) -> None:
        await asyncio.to_thread(self.shutdown)  # shipping may take seconds; the loop keeps running meanwhile

    def startup(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Open the capture segment and start shipping; `loop` is the event loop that answers requests
        (the segment is swapped on it), None when records are appended from one thread without one."""
        if self.writer is None:
            target = self.artifact.manifest.model.target
            self.writer = CaptureWriter(
                self.store,
                self.name,
                self.version,
                self.validator.names,
                target,
                self.options.capture_rate,
                self.options.fsync_interval,
                task=self.target.task,
                classes=self.classes,
                server=self.server_id,
                loop=loop,
            )
            self.shipper.start(self.writer)
        gc.collect()
        gc.freeze()  # the model and tables live for the process: keep them out of every GC pass
        self.ready = True

    def shutdown(self) -> None:
        """Close the open segment and ship it with whatever else is left (SIGTERM, a pod's preStop), all
        within LEGION_SHIP_SHUTDOWN_TIMEOUT: what is not shipped by then stays on disk for the next start."""
        self.ready = False
        if self.writer is not None:
            deadline = time.monotonic() + self.shutdown_seconds
            self.shipper.stop()  # no join: the ship thread may hang on the store, and closing needs no wait
            self.writer.close(timeout=min(5.0, self.shutdown_seconds / 4))
            self.writer = None
            self.shipper.finish(deadline)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        rid_bytes = request_id_for(header(scope, b"x-request-id"))
        rid = rid_bytes.decode("ascii")
        headers = [*self.headers, (b"x-request-id", rid_bytes)]
        rid_at = len(headers) - 1  # a handler may name the request otherwise (the v2 body's `id`)
        path = scope["path"]
        route = self.routes.get(path) or self.routes.get(path.rstrip("/"))
        endpoint = route.endpoint if route else "unknown"
        flight = self.metrics.flight
        flight.inc()
        try:
            if route is None:
                status, body = 404, self._error(self._not_found(path), 404, rid)
            else:
                handler = route.methods.get(scope["method"])
                if handler is None and scope["method"] == "HEAD":
                    handler = route.methods.get("GET")
                if handler is None:
                    allowed = ", ".join(route.methods)
                    headers.append((b"allow", allowed.encode()))
                    status, body = (
                        405,
                        self._error(f"{scope['method']} is not allowed on {path} (use {allowed})", 405, rid),
                    )
                else:
                    if route.protected and self.auth_enabled:
                        await self._authenticate(scope)
                    status, body, extra = await handler(scope, receive, rid)
                    for item in extra:
                        if item[0] == b"x-request-id":
                            headers[rid_at] = item
                        else:
                            headers.append(item)
        except (InputError, BodyTooLarge) as exc:
            status, body = exc.status, self._error(exc.message, exc.status, rid)
        except AuthError as exc:
            status, body = exc.status, self._error(exc.message, exc.status, rid)
            if exc.status == 401:
                reason = exc.message.replace('"', "'").encode("latin-1", "replace")
                headers.append(
                    (b"www-authenticate", b'Bearer error="invalid_token", error_description="' + reason + b'"')
                )
        except ClientGone:
            flight.dec()
            return
        except Exception:
            log.exception("request %s to %s failed", rid, path)
            status, body = 500, self._error("internal error; the server log has the details", 500, rid)
        flight.dec()
        content_type = CONTENT_TYPE.encode() if endpoint == "metrics" and status == 200 else b"application/json"
        await respond(send, status, body, headers, content_type)
        self.metrics.observe(endpoint, status, time.perf_counter() - start)

    async def _authenticate(self, scope: Scope) -> None:
        value = header(scope, b"authorization")
        authorization = value.decode("latin-1") if value is not None else None
        try:
            self.auth.check(authorization)
        except NeedsRefresh:
            await asyncio.to_thread(self.auth.refresh_jwks)
            self.auth.check(authorization, may_refresh=False)

    def _error(self, message: str, status: int, rid: str) -> bytes:
        return dumps({"error": message, "status": status, "request_id": rid})

    def _not_found(self, path: str) -> str:
        here = f"this server answers model {self.name!r} version {self.version!r}"
        parts = path.strip("/").split("/")
        if len(parts) >= 4 and parts[:2] == ["api", "model"]:
            return f"no model {parts[2]!r} version {parts[3]!r} here; {here} at /api/model/{self.name}/{self.version}"
        if len(parts) >= 3 and parts[:2] == ["v2", "models"]:
            return f"no model {parts[2]!r} here; {here} at /v2/models/{self.name}"
        return f"no endpoint {path}; {here} (see /openapi.json)"

    # -- prediction ----------------------------------------------------------------------------------
    def _predict(self, rows: Rows) -> tuple[Any, Any]:
        predictions = self.predictor.predict(rows)
        probabilities = self.predictor.proba(rows) if rows.proba else None
        if rows.proba and probabilities is None:
            raise InputError(f"model {self.name} has no probabilities ({self.artifact.task})", 400)
        self.metrics.rows_child.inc(len(rows.rows))
        return predictions, probabilities

    def _capture(self, rid: str, rows: Rows, predictions: Any, probabilities: Any, start: float, scope: Scope) -> None:
        writer = self.writer
        if writer is None or not self.capture_on or not writer.sampled():
            return
        shadow = header(scope, b"x-legion-shadow") == b"1"  # a copy the router mirrored: not a caller's answer
        latency = (time.perf_counter() - start) * 1000.0
        if probabilities is not None and not probabilities.flags.c_contiguous:
            probabilities = probabilities.copy()
        if writer.prediction(rid, rows.rows, predictions, probabilities, latency, time.time(), shadow):
            self.metrics.captured_child.inc()
        else:
            self.metrics.capture_errors_child.inc()

    async def invoke(self, scope: Scope, receive: Receive, rid: str) -> tuple[int, bytes, list[Any]]:
        start = time.perf_counter()
        body = await read_body(scope, receive, self.options.max_body_bytes)
        query = scope.get("query_string", b"")
        proba = _proba_flag(query) if query else False
        rows = self.validator.invoke(parse_json(body, self.options.max_body_bytes), proba)
        predictions, probabilities = self._predict(rows)
        preds = predictions if predictions.dtype.kind in "fiub" else predictions.tolist()
        answer: dict[str, Any] = {"model": self.name, "version": self.version, "predictions": preds}
        if probabilities is not None:
            answer["probabilities"] = probabilities if probabilities.flags.c_contiguous else probabilities.copy()
            answer["classes"] = self.classes
        out = dumps(answer)
        self._capture(rid, rows, preds, answer.get("probabilities"), start, scope)
        return 200, out, []

    async def infer(self, scope: Scope, receive: Receive, rid: str) -> tuple[int, bytes, list[Any]]:
        start = time.perf_counter()
        body = parse_json(await read_body(scope, receive, self.options.max_body_bytes), self.options.max_body_bytes)
        rows = v2.to_rows(body, self.validator)
        req_id = self._v2_request_id(body, scope, rid)
        predictions, probabilities = self._predict(rows)
        outputs = [v2.output("predict", predictions)]
        if probabilities is not None:
            outputs.append(v2.output("predict_proba", probabilities))
        answer = {"model_name": self.name, "model_version": self.version, "id": req_id, "outputs": outputs}
        out = dumps(answer)
        preds = predictions if predictions.dtype.kind in "fiub" else predictions.tolist()
        self._capture(req_id, rows, preds, probabilities, start, scope)
        return 200, out, [(b"x-request-id", req_id.encode())] if req_id != rid else []

    @staticmethod
    def _v2_request_id(body: dict[str, Any], scope: Scope, rid: str) -> str:
        """One id per request: the body's `id` when given (it then keys the capture, the feedback and the
        X-Request-ID answer header), else the X-Request-ID. Both given and different is a 422, unless
        the router made the header's id up (the caller sent none), marked by X-Legion-Request-ID-Minted."""
        if "id" not in body:
            return rid
        given = body["id"]
        if not isinstance(given, str) or not valid_request_id(given):
            raise InputError(
                f"id: expected a request id of {REQUEST_ID_CHARS} (it keys the capture and the feedback), "
                f"got {preview(given)}"
            )
        sent = header(scope, b"x-request-id")
        minted = header(scope, b"x-legion-request-id-minted") is not None  # the router made `sent` up
        if sent is not None and not minted and sent.decode("latin-1") != given:
            raise InputError(
                f"id: {preview(given)} differs from the X-Request-ID header {preview(sent.decode('latin-1'))}; "
                "send one id (or the same in both)"
            )
        return given

    # -- feedback ------------------------------------------------------------------------------------
    async def feedback(self, scope: Scope, receive: Receive, rid: str) -> tuple[int, bytes, list[Any]]:
        body = parse_json(await read_body(scope, receive, self.options.max_body_bytes), self.options.max_body_bytes)
        items = body if isinstance(body, list) else [body]
        if not items:
            raise InputError('body: an empty array (send {"request_id": ..., "ground_truth": ...})')
        if len(items) > self.options.max_feedback_items:
            raise InputError(
                f"body: {len(items)} feedback items, over the limit of {self.options.max_feedback_items} per request",
                413,
            )
        where = [f"[{i}]" if isinstance(body, list) else "body" for i in range(len(items))]
        checked = [self._feedback_item(item, at) for item, at in zip(items, where, strict=True)]
        writer = self.writer
        if writer is None:
            raise InputError("the server is not ready to take feedback yet", 503)
        counts = await asyncio.to_thread(lambda: [writer.rows_of(r) for r, _, _ in checked])
        labelled = []  # every item is checked before any is stored: a refused request stores nothing
        for (request_id, truth, payload), rows, at in zip(checked, counts, where, strict=True):
            known_rows = rows if rows is not None and rows != UNKNOWN_ROWS else None
            try:
                labels = self.target.check_all(truth, known_rows)
            except LabelError as exc:
                raise InputError(f"{at}.ground_truth{'' if str(exc).startswith('[') else ': '}{exc}") from None
            stored = labels if isinstance(truth, list) else labels[0]
            labelled.append((request_id, stored, payload, rows is not None))
        if not writer.feedback_many(labelled):  # one write: all items are stored, or none (a retry duplicates none)
            raise InputError("the feedback store cannot take records right now (disk full?); retry", 503)
        results = [{"request_id": request_id, "matched": known} for request_id, _, _, known in labelled]
        answer = results[0] if not isinstance(body, list) else {"accepted": len(results), "results": results}
        return 200, dumps(answer), []

    def _feedback_item(self, item: Any, where: str) -> tuple[str, Any, Any]:
        if not isinstance(item, dict):
            raise InputError(f"{where}: expected an object with request_id and ground_truth")
        unknown = [k for k in item if k not in ("request_id", "ground_truth", "payload")]
        if unknown:
            raise InputError(
                f"{where}: unknown field {preview(unknown[0])} (expected request_id, ground_truth, payload)"
            )
        request_id = item.get("request_id")
        if not isinstance(request_id, str) or not valid_request_id(request_id):
            raise InputError(
                f"{where}.request_id: expected the X-Request-ID of an answered request "
                f"({REQUEST_ID_CHARS}), got {preview(request_id)}"
            )
        if "ground_truth" not in item:
            raise InputError(f"{where}: missing field 'ground_truth'")
        try:
            orjson.dumps([item["ground_truth"], item.get("payload")])
        except orjson.JSONEncodeError:
            raise InputError(f"{where}: ground_truth or payload is nested too deep to store") from None
        return request_id, item["ground_truth"], item.get("payload")

    # -- descriptions --------------------------------------------------------------------------------
    async def info(self, scope: Scope, receive: Receive, rid: str) -> tuple[int, bytes, list[Any]]:
        manifest = self.artifact.manifest
        lineage = {
            **manifest.model_dump(mode="json", include=LINEAGE_FIELDS),
            "data_fingerprint": manifest.data.fingerprint,
            "estimator": manifest.model.estimator,
        }
        answer = {
            "model": self.name,
            "version": self.version,
            "artifact_id": self.artifact.id,
            "task": self.artifact.task,
            "classes": self.classes,
            "estimator": manifest.model.estimator,
            "input_schema": self.artifact.schema.to_json(),
            "lineage": lineage,
            "serving": {
                "predictor": self.predictor.tier,
                "auth": self.auth_enabled,
                "capture": self.capture_on,
                "capture_rate": self.options.capture_rate,
                "max_rows": self.options.max_rows,
                "max_body_bytes": self.options.max_body_bytes,
                "server": f"legion-ci {__version__}",
            },
        }
        return 200, dumps(answer), []

    async def v2_server(self, scope: Scope, receive: Receive, rid: str) -> tuple[int, bytes, list[Any]]:
        return 200, dumps({"name": "legion-ci", "version": __version__, "extensions": []}), []

    async def v2_metadata(self, scope: Scope, receive: Receive, rid: str) -> tuple[int, bytes, list[Any]]:
        classifier = self.artifact.task == "classification"
        outputs = [
            {"name": "predict", "datatype": _class_datatype(self.classes) if classifier else "FP64", "shape": [-1]}
        ]
        if self.predictor.has_proba:
            outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(self.classes or [])]})
        answer = {
            "name": self.name,
            "versions": [self.version],
            "platform": "sklearn",
            "inputs": v2.input_metadata(self.features),
            "outputs": outputs,
        }
        return 200, dumps(answer), []

    async def live(self, scope: Scope, receive: Receive, rid: str) -> tuple[int, bytes, list[Any]]:
        return 200, b'{"status":"live"}', []

    async def ready_check(self, scope: Scope, receive: Receive, rid: str) -> tuple[int, bytes, list[Any]]:
        if not self.ready:
            return 503, dumps({"status": "not ready", "model": self.name, "version": self.version}), []
        return 200, dumps({"status": "ready", "model": self.name, "version": self.version}), []

    async def prometheus(self, scope: Scope, receive: Receive, rid: str) -> tuple[int, bytes, list[Any]]:
        return 200, self.metrics.render(), []

    async def openapi_doc(self, scope: Scope, receive: Receive, rid: str) -> tuple[int, bytes, list[Any]]:
        return 200, self.openapi, []


def _proba_flag(query: bytes) -> bool:
    """The `proba` query parameter: true/false/1/0; other values and other parameters are refused."""
    from urllib.parse import parse_qsl

    flag = False
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if key != "proba":
            raise InputError(f"unknown query parameter {key!r:.40} (the only one is proba=true|false)")
        if key == "proba":
            if value.lower() not in ("true", "false", "1", "0"):
                raise InputError(f"query parameter proba: expected true or false, got {value!r:.40}")
            flag = value.lower() in ("true", "1")
    return flag


def _class_datatype(classes: Any) -> str:
    if classes and all(isinstance(c, bool) for c in classes):
        return "BOOL"
    if classes and all(isinstance(c, int) for c in classes):
        return "INT64"
    if classes and all(isinstance(c, (int, float)) for c in classes):
        return "FP64"
    return "BYTES"


def create_app(
    artifact: Artifact,
    options: ServeOptions,
    settings: Settings,
    predictor: Predictor | None = None,
) -> ModelApp:
    """The ASGI app serving `artifact` (its model is loaded and checked here unless `predictor` is given)
    with the settings its process read at start."""
    return ModelApp(artifact, options, settings, predictor)
