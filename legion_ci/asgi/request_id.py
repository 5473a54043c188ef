"""X-Request-ID: the id that ties an answer to its captured prediction and to later feedback.

A caller's id is kept when it is 1-128 letters, digits, '.', '_', ':' or '-'; otherwise (or without one)
the first process that sees the request gives it a new random one, and every hop after keeps it.
"""

from __future__ import annotations

import os
import re

REQUEST_ID_CHARS = "1-128 letters, digits, '.', '_', ':', '-'"
_TEXT = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_BYTES = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")


def valid_request_id(value: str) -> bool:
    """True when `value` may be used as a request id."""
    return _TEXT.fullmatch(value) is not None


def new_request_id() -> bytes:
    return os.urandom(12).hex().encode()


def request_id_for(given: bytes | None) -> bytes:
    """The caller's X-Request-ID value when it is a valid id, else a new one."""
    if given is not None and _BYTES.fullmatch(given) is not None:
        return given
    return new_request_id()
