"""Draining: before a replica stops, the router must have stopped sending to it and its last request ended."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import httpx


def busy(routes: dict[str, Any], deployment_ids: set[int]) -> list[str]:
    """What still keeps these deployments from stopping, per the router's /routes answer (empty: drained)."""
    reasons = []
    for model, entry in routes.get("models", {}).items():
        for d in entry.get("deployments", []):
            if d["deployment_id"] not in deployment_ids:
                continue
            if d.get("routed") and d.get("weight", 0) > 0:
                reasons.append(f"{model} deployment {d['deployment_id']} still has weight {d['weight']} in the router")
            if d.get("inflight", 0) > 0:
                reasons.append(f"{model} deployment {d['deployment_id']} has {d['inflight']} request(s) in flight")
    return reasons


def wait_drained(router_url: str | None, deployment_ids: Iterable[int], timeout: float = 30.0) -> list[str]:
    """Wait until the router routes nothing to the deployments and none of their requests is in flight.

    Returns what was still pending at the timeout (empty when drained, or when no router runs: then
    nothing routes to them). The caller stops the processes either way; SIGTERM lets a model server
    finish what it holds, so a timeout here costs time, not requests.
    """
    ids = set(deployment_ids)
    if not router_url or not ids:
        return []
    deadline = time.monotonic() + timeout
    pending: list[str] = []
    with httpx.Client(timeout=2.0) as client:
        while True:
            try:
                pending = busy(client.get(f"{router_url}/routes").json(), ids)
            except (httpx.HTTPError, ValueError):
                return []  # the router is gone: nobody routes to these replicas any more
            if not pending or time.monotonic() >= deadline:
                return pending
            time.sleep(0.1)
