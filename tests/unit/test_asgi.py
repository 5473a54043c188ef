"""The ASGI plumbing the model server and the router share: request ids, bounded bodies, the lifespan loop.

Each piece is driven with the messages an ASGI server sends (as uvicorn would), and the messages it
sends back are what is checked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest

from legion_ci.asgi.http import BodyTooLarge, ClientGone, read_body, respond, send_bytes
from legion_ci.asgi.lifespan import run_lifespan
from legion_ci.asgi.request_id import request_id_for, valid_request_id
from legion_ci.asgi.types import Message, Receive, Scope


def _receiver(messages: Iterable[Message]) -> Receive:
    queue = list(messages)

    async def receive() -> Message:
        return queue.pop(0)

    return receive


def _scope(content_length: int | None = None) -> Scope:
    headers = [] if content_length is None else [(b"content-length", str(content_length).encode())]
    return {"type": "http", "headers": headers}


@pytest.mark.parametrize("given", [b"trace-42.a", b"a", b"A:b_c-d.e", b"x" * 128])
def test_a_valid_caller_request_id_is_kept(given: bytes) -> None:
    assert request_id_for(given) == given
    assert valid_request_id(given.decode())


@pytest.mark.parametrize("given", [None, b"", b"a b", b"x" * 129, b"abc\n", b"\xe9t\xe9", b"a/b"])
def test_an_invalid_or_missing_request_id_is_replaced_by_a_new_one(given: bytes | None) -> None:
    made = request_id_for(given)
    assert made != given and valid_request_id(made.decode()) and len(made) == 24
    assert request_id_for(None) != made  # random, not a constant
    if given is not None:
        assert not valid_request_id(given.decode("latin-1"))


def test_read_body_joins_chunks_under_the_limit() -> None:
    receive = _receiver(
        [
            {"type": "http.request", "body": b"ab", "more_body": True},
            {"type": "http.request", "body": b"", "more_body": True},
            {"type": "http.request", "body": b"cd", "more_body": False},
        ]
    )
    assert asyncio.run(read_body(_scope(), receive, 4)) == b"abcd"


def _scope_expecting_continue(content_length: int) -> Scope:
    scope = _scope(content_length)
    scope["headers"].append((b"expect", b"100-continue"))
    return scope


def test_read_body_refuses_a_declared_length_over_the_limit_by_the_header_alone() -> None:
    receive = _receiver([])  # the client waits for 100 Continue: nothing is read, the Content-Length decides
    with pytest.raises(BodyTooLarge, match="request body is 11 bytes, over the limit of 10 bytes") as caught:
        asyncio.run(read_body(_scope_expecting_continue(11), receive, 10))
    assert caught.value.status == 413


def test_read_body_drains_a_refused_body_so_a_write_first_client_reads_the_413() -> None:
    messages = [
        {"type": "http.request", "body": b"abcdef", "more_body": True},
        {"type": "http.request", "body": b"ghijk", "more_body": False},
    ]
    pending = list(messages)

    async def receive() -> Message:
        return pending.pop(0)

    with pytest.raises(BodyTooLarge, match="request body is 11 bytes, over the limit of 10 bytes"):
        asyncio.run(read_body(_scope(11), receive, 10))
    assert pending == []  # read to the end (and dropped), not left unread for a connection reset


def test_read_body_refuses_as_soon_as_the_chunks_pass_the_limit_and_drains_the_rest() -> None:
    pending: list[Message] = [
        {"type": "http.request", "body": b"abc", "more_body": True},
        {"type": "http.request", "body": b"def", "more_body": True},
        {"type": "http.request", "body": b"dropped", "more_body": False},
    ]

    async def receive() -> Message:
        return pending.pop(0)

    with pytest.raises(BodyTooLarge, match="over the limit of 5 bytes"):
        asyncio.run(read_body(_scope(), receive, 5))
    assert pending == []


def test_read_body_notices_a_client_that_went_away() -> None:
    receive = _receiver([{"type": "http.request", "body": b"ab", "more_body": True}, {"type": "http.disconnect"}])
    with pytest.raises(ClientGone):
        asyncio.run(read_body(_scope(), receive, 100))


def test_answers_carry_their_length_and_type() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(respond(send, 201, b'{"a":1}', [(b"x-request-id", b"r1")]))
    asyncio.run(send_bytes(send, 200, [(b"content-type", b"text/plain")], b"hello"))
    assert sent[0] == {
        "type": "http.response.start",
        "status": 201,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"7"), (b"x-request-id", b"r1")],
    }
    assert sent[1] == {"type": "http.response.body", "body": b'{"a":1}'}
    assert sent[2]["headers"] == [(b"content-type", b"text/plain"), (b"content-length", b"5")]
    assert sent[3]["body"] == b"hello"


def test_lifespan_runs_startup_then_shutdown() -> None:
    calls: list[str] = []
    sent: list[Message] = []

    async def startup() -> None:
        calls.append("startup")

    async def shutdown() -> None:
        calls.append("shutdown")

    async def send(message: Message) -> None:
        sent.append(message)

    receive = _receiver([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    asyncio.run(run_lifespan(receive, send, startup, shutdown))
    assert calls == ["startup", "shutdown"]
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_a_failing_startup_is_reported_and_the_loop_ends() -> None:
    sent: list[Message] = []

    async def startup() -> None:
        raise RuntimeError("the model file is gone")

    async def shutdown() -> None:
        raise AssertionError("shutdown must not run after a failed startup")

    async def send(message: Message) -> None:
        sent.append(message)

    receive = _receiver([{"type": "lifespan.startup"}])
    asyncio.run(run_lifespan(receive, send, startup, shutdown))
    assert sent == [{"type": "lifespan.startup.failed", "message": "the model file is gone"}]
