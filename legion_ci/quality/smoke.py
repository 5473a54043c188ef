"""Smoke test of a served model: its example rows must come back with the artifact's own predictions,
from each replica directly and through the router (where answers tagged with its version must appear)."""

from __future__ import annotations

import math
from typing import Any

import httpx

from legion_ci.core.artifact import Artifact
from legion_ci.core.settings import Settings

SMOKE_TOKEN_SECONDS = 300


def auth_headers(settings: Settings, art: Artifact, auth: bool) -> dict[str, str]:
    """A short-lived token for this model (any version: through the router either may answer)."""
    if not auth:
        return {}
    from legion_ci.auth.tokens import mint_model_token

    token = mint_model_token(settings, art.name, None, min(SMOKE_TOKEN_SECONDS, settings.jwt_max_ttl))
    return {"Authorization": f"Bearer {token}"}


def same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, float) or isinstance(actual, float):
        try:
            return math.isclose(float(expected), float(actual), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return bool(expected == actual)


def compare(where: str, art: Artifact, answer: httpx.Response) -> list[str]:
    """Problems with one answer to the example rows (empty when it is the artifact's own prediction)."""
    if answer.status_code != 200:
        return [f"{where}: HTTP {answer.status_code}: {answer.text[:300]}"]
    problems = []
    served = answer.headers.get("x-model-version")
    if served != art.version:
        problems.append(f"{where}: answered from version {served!r}, expected {art.version!r}")
    predictions = answer.json().get("predictions", [])
    expected = art.schema.example_predictions
    if len(predictions) != len(expected):
        problems.append(f"{where}: {len(predictions)} predictions for {len(expected)} rows")
    for i, (want, got) in enumerate(zip(expected, predictions, strict=False)):
        if not same(want, got):
            problems.append(f"{where}: row {i}: predicted {got!r}, the artifact predicts {want!r}")
    return problems


def check_endpoint(url: str, art: Artifact, headers: dict[str, str]) -> list[str]:
    """Problems found at one replica (empty when it answers exactly as the artifact predicts)."""
    body = {"instances": art.schema.example}
    try:
        answer = httpx.post(f"{url}/api/model/{art.name}/{art.version}/invoke", json=body, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        return [f"{url}: no answer: {exc}"]
    return compare(url, art, answer)


def check_router(router_url: str, art: Artifact, headers: dict[str, str], weight: int) -> list[str]:
    """Through the router: the version-pinned path answers as the artifact predicts, and the stable path
    (shared by weight) answers from this version within the requests its weight should need. At weight 0 (a
    shadow candidate: callers never get its answers) only the pinned path is checked."""
    problems = check_endpoint(router_url, art, headers)
    if weight == 0:
        return problems
    body = {"instances": art.schema.example}
    attempts = max(10, 5 * math.ceil(100 / max(weight, 1)))
    stable = f"{router_url}/api/model/{art.name}/invoke"
    seen: dict[str, int] = {}
    with httpx.Client(timeout=10, headers=headers) as client:
        for _ in range(attempts):
            try:
                answer = client.post(stable, json=body)
            except httpx.HTTPError as exc:
                return [*problems, f"{stable}: no answer: {exc}"]
            if answer.status_code != 200:
                return [*problems, f"{stable}: HTTP {answer.status_code}: {answer.text[:300]}"]
            version = answer.headers.get("x-model-version", "?")
            seen[version] = seen.get(version, 0) + 1
            if version == art.version:
                return problems + compare(stable, art, answer)
    tally = ", ".join(f"{v}: {n}" for v, n in sorted(seen.items()))
    return [
        *problems,
        f"{stable}: no answer from version {art.version} in {attempts} requests ({tally}) "
        f"although it should get {weight}% of them",
    ]
