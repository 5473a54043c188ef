"""JSON in and out: a bounded request body parsed into an object, answers encoded by orjson (NaN → null)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from legion_ci.api.errors import ApiError
from legion_ci.asgi.http import DRAIN_BYTES

MAX_BODY = 65_536


@dataclass
class Reply:
    """What a handler answers; `audit` is what the audit log records about the change."""

    status: int
    body: Any
    audit: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def error_body(message: str, field_name: str | None = None) -> dict[str, Any]:
    return {"error": message, "field": field_name}


def response(reply: Reply) -> Response:
    body = orjson.dumps(reply.body, default=str, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, reply.status, headers=reply.headers, media_type="application/json")


async def read_object(request: Request, required: bool, limit: int = MAX_BODY) -> dict[str, Any]:
    """The body as a JSON object; 413 over `limit` bytes, 400 when it is not a JSON object.
    An empty body is {} unless `required`."""
    length = request.headers.get("content-length", "")
    declared = int(length) if length.isascii() and length.isdigit() else None
    if declared is not None and declared > limit and (declared > DRAIN_BYTES or "expect" in request.headers):
        raise ApiError(413, f"request body is {declared} bytes, over the limit of {limit} bytes")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > DRAIN_BYTES:
                break
            if size <= limit:
                chunks.append(chunk)
            # over the limit: read on and drop, so a client that writes before reading gets the 413
    except ClientDisconnect:
        raise ApiError(400, "the client disconnected before sending its body") from None
    if size > limit:
        what = f"is {declared} bytes, over" if declared is not None and declared > limit else "is over"
        raise ApiError(413, f"request body {what} the limit of {limit} bytes")
    raw = b"".join(chunks)
    if not raw.strip():
        if required:
            raise ApiError(400, "request body is empty (expected a JSON object)")
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"request body must be a JSON object, not {type(data).__name__}")
    return data
