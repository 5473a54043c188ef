"""Options of one model server, with their defaults in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeOptions:
    """How a model server runs. Defaults match legion.yaml's `serving` section."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    auth: bool = True
    capture: bool = True
    capture_rate: float = 1.0
    max_rows: int = 1000
    max_body_bytes: int = 1_048_576
    max_feedback_items: int = 1000  # items of one feedback request (413 over it)
    fsync_interval: float = 1.0  # seconds between fsyncs of the capture segment (power-loss window)
    ship_interval: float = 30.0  # a segment ships to the store at most this many seconds after it opened
