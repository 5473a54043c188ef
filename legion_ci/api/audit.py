"""The audit log: one JSON line per mutating call in $LEGION_HOME/audit.log, whatever its outcome.

Lines hold time, subject, role, method, path, status, outcome and what changed; never a token or a header."""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from legion_ci.core.errors import ConfigError

log = logging.getLogger(__name__)
FILE = "audit.log"
OUTCOMES = {401: "unauthenticated", 403: "denied", 404: "not-found", 405: "not-allowed", 409: "conflict"}


def outcome(status: int) -> str:
    if status == 202:
        return "accepted"  # a change handed to a background operation; its end is a line of its own
    if status < 400:
        return "ok"
    if status >= 500:
        return "error"
    return OUTCOMES.get(status, "invalid")


class AuditLog:
    """Appends whole lines (one write each, O_APPEND) so several API processes can share the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
        except OSError as exc:
            raise ConfigError(f"audit log {str(path)!r} cannot be written: {exc.strerror}") from None

    def record(self, entry: dict[str, Any]) -> None:
        """Write one entry; a write that fails is logged (the answer has been decided already)."""
        line = (
            json.dumps(
                {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), **entry},
                default=str,
                separators=(",", ":"),
            )
            + "\n"
        )
        with self._lock:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line.encode("utf-8"))
                finally:
                    os.close(fd)
            except OSError as exc:
                log.error("audit log %s: cannot write: %s", self.path, exc.strerror)

    def writable(self) -> bool:
        return os.access(self.path, os.W_OK)
