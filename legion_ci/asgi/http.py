"""Reading a request and sending an answer on raw ASGI: find a header, read a bounded body, send bytes
or JSON with their Content-Length."""

from __future__ import annotations

from typing import Any

import orjson

from legion_ci.asgi.types import Headers, Receive, Scope, Send

JSON = b"application/json"
DRAIN_BYTES = 16 << 20  # an oversized body up to this size is read and dropped before the 413 goes out


class ClientGone(Exception):
    """The client disconnected before its body arrived."""


class BodyTooLarge(Exception):
    """The request body (or its Content-Length) passed the limit: the answer is 413."""

    status = 413

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


async def _drain(receive: Receive, budget: int) -> None:
    """Read and drop the rest of a refused body (up to `budget` bytes), so that a client that writes its
    whole request before reading the answer (urllib, many SDKs) gets the 413 and not a connection reset."""
    while budget > 0:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body"):
            return
        budget -= len(message.get("body", b""))


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body; BodyTooLarge as soon as it (or its Content-Length) passes `limit` bytes,
    ClientGone when the client disconnects first. The rest of an oversized body is drained (up to
    DRAIN_BYTES) first, unless the client waits for `100 Continue`."""
    length = header(scope, b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        if int(length) <= DRAIN_BYTES and header(scope, b"expect") is None:
            await _drain(receive, int(length))
        raise BodyTooLarge(f"request body is {int(length)} bytes, over the limit of {limit} bytes")
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    chunks, size = [body], len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            await _drain(receive, DRAIN_BYTES - size)
            raise BodyTooLarge(f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def send_bytes(send: Send, status: int, headers: Headers, body: bytes) -> None:
    """Send `body` with `headers` as they are, plus its Content-Length."""
    await send(
        {"type": "http.response.start", "status": status, "headers": [*headers, (b"content-length", b"%d" % len(body))]}
    )
    await send({"type": "http.response.body", "body": body})


async def respond(send: Send, status: int, body: bytes, headers: Headers, content_type: bytes = JSON) -> None:
    """Send `body` as `content_type` (JSON unless told), its Content-Length, then `headers`."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", b"%d" % len(body)), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


def dumps(data: Any) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)
