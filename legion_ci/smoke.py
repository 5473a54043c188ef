"""Smoke test of a served model: its example rows must come back with the artifact's own predictions."""

from __future__ import annotations

import math
from typing import Any

import httpx

from legion_ci.artifact import Artifact
from legion_ci.config import Settings


def auth_headers(settings: Settings, art: Artifact, auth: bool) -> dict[str, str]:
    """A short-lived token scoped to this model version, when the server checks tokens."""
    if not auth:
        return {}
    from legion_ci.serving.auth import create_token, load_or_create_secret

    token = create_token(load_or_create_secret(settings), art.name, art.version, ttl_seconds=120)
    return {"Authorization": f"Bearer {token}"}


def same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, float) or isinstance(actual, float):
        try:
            return math.isclose(float(expected), float(actual), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return bool(expected == actual)


def check_endpoint(url: str, art: Artifact, headers: dict[str, str]) -> list[str]:
    """Problems found at one endpoint (empty when it answers exactly as the artifact predicts)."""
    schema = art.schema
    body = {"instances": schema["example"]}
    try:
        answer = httpx.post(f"{url}/api/model/{art.name}/{art.version}/invoke", json=body, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        return [f"{url}: no answer: {exc}"]
    if answer.status_code != 200:
        return [f"{url}: HTTP {answer.status_code}: {answer.text[:300]}"]
    problems = []
    served = answer.headers.get("x-model-version")
    if served != art.version:
        problems.append(f"{url}: answered from version {served!r}, expected {art.version!r}")
    predictions = answer.json().get("predictions", [])
    expected = schema["example_predictions"]
    if len(predictions) != len(expected):
        problems.append(f"{url}: {len(predictions)} predictions for {len(expected)} rows")
    for i, (want, got) in enumerate(zip(expected, predictions)):
        if not same(want, got):
            problems.append(f"{url}: row {i}: predicted {got!r}, the artifact predicts {want!r}")
    return problems
