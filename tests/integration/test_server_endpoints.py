"""Every endpoint of a real `legion-ci serve` process, and its answers against the artifact's own predict."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from legion_ci.core.artifact import Artifact

from .conftest import Server

API = "/api/model/iris/1.0.0"
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3], [5.9, 3.0, 5.1, 1.8]]


def _model_answers(artifact: Path, rows: list[list[float]]) -> tuple[list[int], np.ndarray]:
    art = Artifact.open(artifact)
    frame = pd.DataFrame(rows, columns=art.feature_names)
    return art.model.predict(frame).tolist(), art.model.predict_proba(frame)


def test_invoke_equals_the_artifacts_own_predict(server: Server, auth: dict[str, str], iris_artifact: Path) -> None:
    rng = np.random.default_rng(1)
    rows = (rng.uniform([4, 2, 1, 0.1], [8, 4.5, 7, 2.5], size=(200, 4))).round(2).tolist()
    answer = httpx.post(f"{server.url}{API}/invoke?proba=true", json={"instances": rows}, headers=auth)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    want, want_proba = _model_answers(iris_artifact, rows)
    assert body["predictions"] == want
    assert np.allclose(body["probabilities"], want_proba, rtol=1e-9, atol=1e-12)
    assert body["model"] == "iris" and body["version"] == "1.0.0" and body["classes"] == [0, 1, 2]


def test_invoke_forms_agree(server: Server, auth: dict[str, str], iris_artifact: Path) -> None:
    names = Artifact.open(iris_artifact).feature_names
    want, _ = _model_answers(iris_artifact, ROWS)
    bodies = [
        {"instances": ROWS},
        {"columns": names[::-1], "data": [row[::-1] for row in ROWS]},
        [dict(zip(names, row, strict=True)) for row in ROWS],
    ]
    for body in bodies:
        answer = httpx.post(f"{server.url}{API}/invoke", json=body, headers=auth)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == want
        assert "probabilities" not in answer.json()
    flagged = httpx.post(
        f"{server.url}{API}/invoke", json={"instances": ROWS, "return_probabilities": True}, headers=auth
    ).json()
    assert len(flagged["probabilities"]) == len(ROWS)


def test_headers_on_every_answer(server: Server, auth: dict[str, str]) -> None:
    mine = httpx.post(
        f"{server.url}{API}/invoke", json={"instances": ROWS[:1]}, headers={**auth, "X-Request-ID": "req-123"}
    )
    assert mine.headers["x-request-id"] == "req-123"
    for answer in (
        mine,
        httpx.get(f"{server.url}/health/live"),
        httpx.get(f"{server.url}/nowhere"),
        httpx.post(f"{server.url}{API}/invoke", content=b"{"),
        httpx.post(f"{server.url}{API}/invoke", json={"instances": ROWS}),  # 401
    ):
        assert answer.headers["x-model-name"] == "iris"
        assert answer.headers["x-model-version"] == "1.0.0"
        assert answer.headers["x-request-id"]
    fresh = httpx.get(f"{server.url}/health/live", headers={"X-Request-ID": "bad id with spaces"})
    assert fresh.headers["x-request-id"] != "bad id with spaces"


def test_health_and_ready(server: Server) -> None:
    assert httpx.get(f"{server.url}/health/live").json() == {"status": "live"}
    ready = httpx.get(f"{server.url}/health/ready").json()
    assert ready["status"] == "ready" and ready["model"] == "iris"
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    assert httpx.get(f"{server.url}/v2/models/iris/ready").status_code == 200
    assert httpx.head(f"{server.url}/health/live").status_code == 200


def test_info_has_schema_and_lineage(server: Server, auth: dict[str, str]) -> None:
    assert httpx.get(f"{server.url}{API}/info").status_code == 401
    info = httpx.get(f"{server.url}{API}/info", headers=auth).json()
    assert info["input_schema"]["features"][0]["name"] == "sepal length (cm)"
    assert info["input_schema"]["example"]
    assert info["lineage"]["git"]["commit"] == "abc123"
    assert info["lineage"]["data_fingerprint"] == "f" * 64
    assert info["lineage"]["metrics"] == {"accuracy": 0.97}
    assert info["serving"]["predictor"] == "compiled" and info["serving"]["auth"] is True


def test_metrics(server: Server, auth: dict[str, str]) -> None:
    httpx.post(f"{server.url}{API}/invoke", json={"instances": ROWS}, headers=auth)
    httpx.post(f"{server.url}{API}/invoke", json={"instances": [[1, 2]]}, headers=auth)
    text = httpx.get(f"{server.url}/metrics").text
    assert 'legion_requests_total{endpoint="invoke",model="iris",status="200",version="1.0.0"}' in text
    assert 'legion_requests_total{endpoint="invoke",model="iris",status="422",version="1.0.0"}' in text
    assert 'legion_request_duration_seconds_bucket{endpoint="invoke"' in text
    assert 'legion_requests_in_flight{model="iris",version="1.0.0"}' in text
    assert 'legion_model_info{artifact_id="0123456789abcdef",commit="abc123"' in text
    assert "process_resident_memory_bytes" in text


def test_openapi_describes_the_model(server: Server) -> None:
    doc = httpx.get(f"{server.url}/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert f"{API}/invoke" in doc["paths"] and "/v2/models/iris/infer" in doc["paths"]
    row = doc["components"]["schemas"]["RowObject"]
    assert row["required"] == ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_v2_metadata_and_infer(server: Server, auth: dict[str, str], iris_artifact: Path) -> None:
    meta = httpx.get(f"{server.url}/v2/models/iris", headers=auth).json()
    assert meta["name"] == "iris" and meta["versions"] == ["1.0.0"]
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert httpx.get(f"{server.url}/v2").json()["name"] == "legion-ci"
    want, want_proba = _model_answers(iris_artifact, ROWS)
    flat = [v for row in ROWS for v in row]
    request = {
        "id": "abc",
        "inputs": [{"name": "input-0", "shape": [4, 4], "datatype": "FP64", "data": flat}],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }
    for path in ("/v2/models/iris/infer", "/v2/models/iris/versions/1.0.0/infer"):
        answer = httpx.post(f"{server.url}{path}", json=request, headers=auth)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model_name"] == "iris" and body["model_version"] == "1.0.0" and body["id"] == "abc"
        predict, proba = body["outputs"]
        assert predict == {"name": "predict", "shape": [4], "datatype": "INT64", "data": want}
        assert proba["shape"] == [4, 3] and np.allclose(np.reshape(proba["data"], (4, 3)), want_proba)
    names = Artifact.open(iris_artifact).feature_names
    by_feature = {
        "inputs": [
            {"name": n, "shape": [4], "datatype": "FP64", "data": [r[i] for r in ROWS]} for i, n in enumerate(names)
        ]
    }
    answer = httpx.post(f"{server.url}/v2/models/iris/infer", json=by_feature, headers=auth)
    assert answer.json()["outputs"][0]["data"] == want


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}, "does not fit [N, 4]"),
        ({"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]}, "4 values for shape"),
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP99", "data": [1, 2, 3, 4]}]}, "not a v2 datatype"),
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64"}]}, "missing field 'data'"),
        ({"inputs": []}, "non-empty array"),
        (
            {
                "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}],
                "outputs": [{"name": "nope"}],
            },
            "outputs[0].name",
        ),
    ],
)
def test_v2_bad_requests(server: Server, auth: dict[str, str], request_body: dict, message: str) -> None:
    answer = httpx.post(f"{server.url}/v2/models/iris/infer", json=request_body, headers=auth)
    assert answer.status_code == 422, answer.text
    assert message in answer.json()["error"]


def test_unknown_model_paths_and_methods(server: Server, auth: dict[str, str]) -> None:
    other = httpx.post(f"{server.url}/api/model/mnist/2.0.0/invoke", json={}, headers=auth)
    assert other.status_code == 404
    assert "this server answers model 'iris' version '1.0.0'" in other.json()["error"]
    assert httpx.get(f"{server.url}/v2/models/mnist", headers=auth).status_code == 404
    wrong = httpx.get(f"{server.url}{API}/invoke", headers=auth)
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"


def test_feedback_matches_known_and_flags_unknown(server: Server, auth: dict[str, str]) -> None:
    answer = httpx.post(
        f"{server.url}{API}/invoke", json={"instances": ROWS[:2]}, headers={**auth, "X-Request-ID": "fb-known-1"}
    )
    assert answer.status_code == 200
    known = httpx.post(
        f"{server.url}{API}/feedback", json={"request_id": "fb-known-1", "ground_truth": [0, 1]}, headers=auth
    )
    assert known.json() == {"request_id": "fb-known-1", "matched": True}
    unknown = httpx.post(
        f"{server.url}{API}/feedback", json={"request_id": "never-seen", "ground_truth": 2}, headers=auth
    )
    assert unknown.status_code == 200 and unknown.json() == {"request_id": "never-seen", "matched": False}
    batch = httpx.post(
        f"{server.url}{API}/feedback",
        headers=auth,
        json=[
            {"request_id": "fb-known-1", "ground_truth": [0, 1], "payload": {"source": "labeler"}},
            {"request_id": "other", "ground_truth": 1},
        ],
    )
    assert batch.json()["accepted"] == 2
    for bad, message in (
        ({"ground_truth": 1}, "request_id"),
        ({"request_id": "x"}, "missing field 'ground_truth'"),
        ({"request_id": "a b", "ground_truth": 1}, "request_id"),
        ({"request_id": "x", "ground_truth": 1, "extra": 1}, "unknown field 'extra'"),
        ([], "empty"),
    ):
        refused = httpx.post(f"{server.url}{API}/feedback", json=bad, headers=auth)
        assert refused.status_code == 422 and message in refused.json()["error"], refused.text
