"""Hostile bodies, headers and tokens against the real model server and management API: deep nesting, unknown
fields, ids, feedback bounds, and property-based runs that assert no 5xx, no dropped connection and bounded
memory (server RSS after a run at most RSS_GROWTH_MB above where it started)."""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile import nested, signed

from .conftest import JWT_SECRET, Server, start_server
from .test_management_api import Api, api_env, start_api

API = "/api/model/iris/1.0.0"
ROW = [5.1, 3.5, 1.4, 0.2]
RSS_GROWTH_MB = 64
RUN = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def tensor(data: bytes, shape: str = "[1, 4]") -> bytes:
    return b'{"inputs": [{"name": "x", "shape": ' + shape.encode() + b', "datatype": "FP64", "data": ' + data + b"}]}"


# -- nesting, unknown fields, ids, feedback bounds --------------------------------------------------------


@pytest.mark.parametrize("depth", [3, 100, 990, 5000])
def test_deeply_nested_bodies_are_refused_not_500(open_server: Server, depth: int) -> None:
    deep = nested(depth)
    cases = [
        ("/v2/models/iris/infer", tensor(deep)),
        ("/v2/models/iris/infer", tensor(b"[1, 2, 3, " + deep + b"]")),
        (f"{API}/invoke", b'{"instances": [[1, 2, 3, ' + deep + b"]]}"),
        (f"{API}/feedback", b'{"request_id": "x", "ground_truth": ' + deep + b"}"),
    ]
    for path, body in cases:
        answer = httpx.post(f"{open_server.url}{path}", content=body, headers={"Content-Type": "application/json"})
        refused = answer.status_code in (400, 413, 422)
        assert refused or (path.endswith("feedback") and depth < 250 and answer.status_code == 200), (
            path,
            depth,
            answer.text[:300],
        )
        assert len(answer.text) < 2000  # the message quotes a preview, never the value


def test_v2_unknown_top_level_fields_are_422(open_server: Server) -> None:
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ROW}], "pad": "x" * 2000}
    answer = httpx.post(f"{open_server.url}/v2/models/iris/infer", json=body)
    assert answer.status_code == 422 and "unknown field 'pad'" in answer.json()["error"]
    assert "xxxxxxxxxx" * 20 not in answer.text


def test_one_id_per_request_whichever_protocol(open_server: Server) -> None:
    url = open_server.url
    body = {"id": "v2-id-1", "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ROW}]}
    answer = httpx.post(f"{url}/v2/models/iris/infer", json=body)
    assert answer.status_code == 200 and answer.json()["id"] == "v2-id-1"
    assert answer.headers["x-request-id"] == "v2-id-1"
    feedback = httpx.post(f"{url}{API}/feedback", json={"request_id": "v2-id-1", "ground_truth": 0})
    assert feedback.json() == {"request_id": "v2-id-1", "matched": True}
    both = {"X-Request-ID": "v2-id-2"}
    same = httpx.post(f"{url}/v2/models/iris/infer", json={**body, "id": "v2-id-2"}, headers=both)
    assert same.status_code == 200 and same.headers["x-request-id"] == "v2-id-2"
    clash = httpx.post(f"{url}/v2/models/iris/infer", json=body, headers={"X-Request-ID": "other"})
    assert clash.status_code == 422 and "differs from the X-Request-ID" in clash.json()["error"]
    bad = httpx.post(f"{url}/v2/models/iris/infer", json={**body, "id": "has space"})
    assert bad.status_code == 422 and "id: expected a request id" in bad.json()["error"]
    plain = httpx.post(f"{url}/v2/models/iris/infer", json={"inputs": body["inputs"]}, headers={"X-Request-ID": "h-1"})
    assert plain.json()["id"] == "h-1" and plain.headers["x-request-id"] == "h-1"


def test_feedback_items_per_request_are_bounded(server: Server, auth: dict[str, str]) -> None:
    items = [{"request_id": f"r{i}", "ground_truth": 0} for i in range(1001)]
    answer = httpx.post(f"{server.url}{API}/feedback", json=items, headers=auth)
    assert answer.status_code == 413, answer.text
    assert "1001 feedback items, over the limit of 1000" in answer.json()["error"]


# -- property-based: arbitrary JSON, headers and tokens ----------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=25,
)
TENSOR = st.fixed_dictionaries(
    {"name": st.text(max_size=8) | JSON, "shape": st.lists(st.integers(-2, 5), max_size=4) | JSON, "datatype": JSON}
).flatmap(lambda t: st.fixed_dictionaries({**{k: st.just(v) for k, v in t.items()}, "data": JSON}))
V2_BODY = st.fixed_dictionaries({"inputs": st.lists(TENSOR, max_size=3)}, optional={"id": JSON, "outputs": JSON})
TOKEN_CHARS = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
FRAMING = {"host", "content-length", "transfer-encoding", "connection", "expect", "upgrade", "te"}
HEADERS = st.dictionaries(
    st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=20).filter(lambda name: name.lower() not in FRAMING),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200).map(str.strip),
    max_size=8,
)
CLAIM_NAMES = st.sampled_from(["exp", "nbf", "iat", "aud", "iss", "sub", "jti", "models", "role"]) | st.text(max_size=4)
HEADER_NAMES = st.sampled_from(["alg", "kid", "typ", "crit", "jku", "cty"]) | st.text(max_size=4)
ALG = st.sampled_from(["HS256", "RS256", "ES256", "PS256", "HS512", "none"]) | JSON


def jwt_strategy(audience: str) -> st.SearchStrategy[str]:
    header = st.builds(lambda alg, rest: {**rest, "alg": alg}, ALG, st.dictionaries(HEADER_NAMES, JSON, max_size=3))
    near = {"aud": st.just(audience) | JSON, "iss": st.just("https://issuer.test") | JSON, "exp": JSON, "models": JSON}
    claims = st.builds(
        lambda base, rest: {**base, **rest},
        st.fixed_dictionaries({}, optional=near),
        st.dictionaries(CLAIM_NAMES, JSON, max_size=4),
    )
    return st.builds(lambda h, c: signed(h, c, JWT_SECRET), header, claims)


@pytest.fixture(scope="module")
def guarded(
    iris_artifact: Path, tmp_path_factory: pytest.TempPathFactory, auth_env: dict[str, str]
) -> Iterator[Server]:
    srv = start_server(iris_artifact, tmp_path_factory.mktemp("home"), env=auth_env)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def management(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    home = tmp_path_factory.mktemp("api-home")
    api = start_api(home, api_env(home))
    yield api
    api.stop()


def test_arbitrary_json_never_gets_a_5xx(open_server: Server) -> None:
    before = rss_mb(open_server.proc.pid)
    client = httpx.Client(base_url=open_server.url, timeout=30)

    @RUN
    @given(body=JSON | V2_BODY, path=st.sampled_from([f"{API}/invoke", "/v2/models/iris/infer", f"{API}/feedback"]))
    def run(body: Any, path: str) -> None:
        answer = client.post(path, content=json.dumps(body), headers={"Content-Type": "application/json"})
        assert answer.status_code < 500, (path, body, answer.text)

    with client:
        run()
    assert rss_mb(open_server.proc.pid) <= before + RSS_GROWTH_MB


def test_arbitrary_headers_never_get_a_5xx(guarded: Server, management: Api) -> None:
    before = rss_mb(guarded.proc.pid), rss_mb(management.proc.pid)

    @RUN
    @given(headers=HEADERS, target=st.sampled_from(["model", "api"]))
    def run(headers: dict[str, str], target: str) -> None:
        url = f"{guarded.url}{API}/invoke" if target == "model" else f"{management.url}/api/v1/models"
        method = "POST" if target == "model" else "GET"
        content = json.dumps({"instances": [ROW]}) if method == "POST" else None
        answer = httpx.request(method, url, headers=headers, content=content, timeout=30)
        assert answer.status_code < 500, (target, headers, answer.text)

    run()
    assert rss_mb(guarded.proc.pid) <= before[0] + RSS_GROWTH_MB
    assert rss_mb(management.proc.pid) <= before[1] + RSS_GROWTH_MB


def test_arbitrary_jwt_headers_and_claims_get_401_or_403(guarded: Server, management: Api) -> None:
    before = rss_mb(guarded.proc.pid), rss_mb(management.proc.pid)

    @RUN
    @given(model_token=jwt_strategy("legion-ci"), api_token=jwt_strategy("legion-ci-management"))
    def run(model_token: str, api_token: str) -> None:
        answer = httpx.post(
            f"{guarded.url}{API}/invoke", json={"instances": [ROW]}, headers={"Authorization": f"Bearer {model_token}"}
        )
        assert answer.status_code in (200, 401, 403), answer.text
        answer = management.call("GET", "/api/v1/models", api_token)
        assert answer.status_code in (200, 401, 403), answer.text

    run()
    assert rss_mb(guarded.proc.pid) <= before[0] + RSS_GROWTH_MB
    assert rss_mb(management.proc.pid) <= before[1] + RSS_GROWTH_MB
