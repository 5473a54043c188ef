"""`legion-ci evaluate` on a real registry and capture store (no model servers: the replicas' /metrics are
unreachable, so the guards wait): the evidence per variant, the decision acted on through the deploy core's
weights, the registry event with its evidence, and the A/B report that `legion-ci ab report` writes again.
Promotion and rollback with real servers and the router: tests/e2e/test_rollout_evidence.py."""

from __future__ import annotations

import json
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from legion_ci.cli import main
from legion_ci.core.registry import Registry
from legion_ci.core.settings import Settings
from legion_ci.feedback.capture import CaptureWriter, segments, store_dir
from legion_ci.reports.ab_report import checks_of, write_ab_reports
from legion_ci.rollout.evidence import collect, errors_from_metrics, score
from tests.manifests import stub_manifest

NOWHERE = [{"url": "http://127.0.0.1:9"}]  # the discard port: nothing answers /metrics there


def canary(iris_dir: Path, **rollout: object) -> Path:
    spec = yaml.safe_load((iris_dir / "legion.yaml").read_text())
    spec["rollout"] = {"strategy": "canary", "steps": [5, 20, 50, 100], "min_labelled": 50, "margin": 0.05, **rollout}
    (iris_dir / "legion.yaml").write_text(yaml.safe_dump(spec))
    return iris_dir


class _Metrics(BaseHTTPRequestHandler):
    BODY = b'legion_requests_total{model="iris",version="2.0.0",endpoint="invoke",status="200"} 400.0\n'

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.BODY)))
        self.end_headers()
        self.wfile.write(self.BODY)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def metrics_endpoints() -> Iterator[list[dict[str, str]]]:
    """A real HTTP server whose /metrics shows 400 invokes answered without an error."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield [{"url": f"http://127.0.0.1:{server.server_address[1]}"}]
    server.shutdown()
    server.server_close()


def deployed(registry: Registry, endpoints: list[dict[str, str]] = NOWHERE) -> tuple[int, int]:
    prod, _ = registry.register_version(stub_manifest("iris", "1.0.0", "a" * 12), "/nowhere")
    cand, _ = registry.register_version(stub_manifest("iris", "2.0.0", "b" * 12), "/nowhere")
    registry.set_alias("iris", "production", prod.id)
    p = registry.add_deployment("iris", prod.id, "local", 95, endpoints, {"version": "1.0.0"})
    c = registry.add_deployment("iris", cand.id, "local", 5, endpoints, {"version": "2.0.0"})
    return p.id, c.id


def traffic(settings: Settings, version: str, rows: int, right: float, prefix: str) -> None:
    """`rows` answered requests of one row each, a share `right` of them with the right answer, all labelled."""
    writer = CaptureWriter(store_dir(settings.feedback_dir, "iris"), "iris", version, ["x"], "target")
    try:
        for i in range(rows):
            rid = f"{prefix}-{i}"
            writer.prediction(rid, [[float(i)]], [1], None, 2.0 + i % 5, time.time())
            writer.feedback(rid, 1 if i < rows * right else 0, None, True)
    finally:
        writer.close()


def test_unreachable_metrics_keep_a_non_inferior_candidate_testing(
    iris_dir: Path, settings: Settings, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    model = canary(iris_dir)
    prod_id, cand_id = deployed(registry)  # /metrics of neither replica answers: the error count is unknown
    traffic(settings, "1.0.0", 400, 0.95, "p")
    traffic(settings, "2.0.0", 400, 0.97, "c")
    assert main(["evaluate", str(model), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["outputs"]["action"] == "keep-testing"
    (event,) = registry.events("iris")
    assert "the error guard has no data" in event.summary
    assert {d.id: d.weight for d in registry.deployments("iris")} == {prod_id: 95, cand_id: 5}


def test_a_shadow_rollout_through_the_gateway_warns_that_callers_need_request_ids(
    iris_dir: Path,
    settings: Settings,
    registry: Registry,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = canary(iris_dir, strategy="shadow", steps=[10, 100])
    deployed(registry)
    warning = "warning: a shadow rollout through the Gateway joins feedback only for callers that send X-Request-ID"
    assert main(["evaluate", str(model)]) == 0
    first = capsys.readouterr()
    assert warning not in first.out + first.err, first
    monkeypatch.setenv("LEGION_GATEWAY_RELEASE", "legion")
    assert main(["evaluate", str(model)]) == 0
    second = capsys.readouterr()
    assert warning in second.out + second.err, second


def test_a_non_inferior_candidate_advances_one_step_with_an_event_and_a_report(
    iris_dir: Path,
    settings: Settings,
    registry: Registry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    metrics_endpoints: list[dict[str, str]],
) -> None:
    model = canary(iris_dir)
    prod_id, cand_id = deployed(registry, metrics_endpoints)
    traffic(settings, "1.0.0", 400, 0.95, "p")
    traffic(settings, "2.0.0", 400, 0.97, "c")
    assert main(["evaluate", str(model), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["outputs"]["action"] == "advance" and out["outputs"]["weight_to"] == 20
    weights = {d.id: d.weight for d in registry.deployments("iris")}
    assert weights == {prod_id: 80, cand_id: 20}
    (event,) = registry.events("iris")
    assert event.action == "advance" and event.run_id == out["run_id"]
    labelled = {v["version"]: v["labelled"] for v in event.detail["variants"]}
    assert labelled == {"2.0.0": 400, "1.0.0": 400}
    assert event.detail["decision"]["interval"]["low"] > -0.05
    folder = settings.runs_dir / out["run_id"] / "evaluate"
    html = (folder / "report.html").read_text()
    assert "A/B rollout" in html and 'data-plot="gain"' in html and "advance" in html
    suite = ET.parse(folder / "junit.xml").getroot()
    assert suite.get("failures") == "0"
    # `ab report` writes the same report again from the registry alone
    assert main(["ab", "report", "iris", "--out", str(tmp_path / "ab")]) == 0
    assert "1 evaluation(s) of this candidate; latest: advance" in capsys.readouterr().out
    assert json.loads((tmp_path / "ab" / "summary.json").read_text())["decision"]["action"] == "advance"


def test_too_little_evidence_keeps_testing_and_changes_nothing(
    iris_dir: Path, settings: Settings, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    model = canary(iris_dir)
    prod_id, cand_id = deployed(registry)
    traffic(settings, "1.0.0", 300, 0.95, "p")
    traffic(settings, "2.0.0", 10, 0.0, "c")
    assert main(["evaluate", str(model), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["outputs"]["action"] == "keep-testing" and "a decision needs 50 each" in out["summary"]
    assert {d.id: d.weight for d in registry.deployments("iris")} == {prod_id: 95, cand_id: 5}


def test_nothing_to_evaluate_without_a_candidate(
    iris_dir: Path, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    prod, _ = registry.register_version(stub_manifest("iris", "1.0.0", "a" * 12), "/nowhere")
    registry.set_alias("iris", "production", prod.id)
    registry.add_deployment("iris", prod.id, "local", 100, NOWHERE, {"version": "1.0.0"})
    assert main(["evaluate", str(iris_dir), "--json"]) == 0
    assert "no candidate beside production" in json.loads(capsys.readouterr().out)["summary"]
    assert registry.events("iris") == []


def test_ab_report_of_a_model_without_evaluations_says_how_to_get_one(
    registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.register_version(stub_manifest("iris", "1.0.0", "a" * 12), "/nowhere")
    assert main(["ab", "report", "iris"]) == 2
    assert "has no rollout evaluation yet; run `legion-ci evaluate MODEL_DIR`" in capsys.readouterr().err
    assert main(["ab", "report", "nosuch"]) == 2
    assert "no model 'nosuch' in the registry" in capsys.readouterr().err


def test_ab_report_after_gc_unlinked_the_candidates_keeps_their_histories_apart(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """gc removed two candidates' versions: their events lost version_id; the report of the newest candidate
    counts its own evaluations (found by its artifact id), not the other candidate's."""

    def detail(artifact: str, action: str) -> dict[str, object]:
        variant = {"role": "candidate", "version": artifact, "artifact_id": artifact}
        return {"model": "iris", "decision": {"action": action, "reason": action}, "variants": [variant]}

    for artifact, action in [("old", "keep-testing"), ("old", "rollback"), ("new", "keep-testing")]:
        registry.add_event("iris", "rollout", action, action, detail(artifact, action), None, f"r-{artifact}")
    registry.add_event("iris", "rollout", "advance", "advance", detail("new", "advance"), None, "r-new-2")
    assert main(["ab", "report", "iris", "--out", str(tmp_path / "ab")]) == 0
    out = capsys.readouterr().out
    assert "2 evaluation(s) of this candidate; latest: advance" in out


def test_a_rollback_is_a_failed_test_case(tmp_path: Path) -> None:
    data = {
        "model": "iris",
        "run_id": "r1",
        "metric": "accuracy",
        "policy": {"margin": 0.02, "max_error_rate": 0.01, "min_requests": 10, "max_p99_ms": None},
        "decision": {"action": "rollback", "reason": "guard breached: error rate 50%", "weight_from": 5},
        "variants": [{"role": "candidate", "version": "2.0.0", "requests": 40, "errors": 20, "error_rate": 0.5}],
    }
    checks = checks_of(data)
    assert [c.passed for c in checks if not c.skipped] == [False, False]
    write_ab_reports(tmp_path, data, [data])
    suite = ET.parse(tmp_path / "junit.xml").getroot()
    assert suite.get("failures") == "2"
    assert "guard breached" in (tmp_path / "report.html").read_text()


def test_scores_and_the_join_per_variant(settings: Settings) -> None:
    assert score("accuracy", 1, "1") == 1.0 and score("accuracy", "setosa", "virginica") == 0.0
    assert score("error_rate", 2, 2) == 0.0 and score("mse", 3.0, 1.0) == 4.0 and score("mae", 3, 1) == 2.0
    assert score("mse", 1.0, "n/a") is None
    traffic(settings, "1.0.0", 20, 0.5, "p")
    folder = store_dir(settings.feedback_dir, "iris")
    found = collect(segments(folder), "accuracy", ["1.0.0", "2.0.0"], since=0)
    assert found["1.0.0"].labelled == 20 and found["1.0.0"].mean_var()[0] == 0.5 and found["2.0.0"].labelled == 0
    assert collect(segments(folder), "accuracy", ["1.0.0"], since=time.time() + 60)["1.0.0"].labelled == 0


def test_errors_are_read_from_the_servers_metrics() -> None:
    text = (
        'legion_requests_total{model="iris",version="1",endpoint="invoke",status="200"} 90.0\n'
        'legion_requests_total{model="iris",version="1",endpoint="invoke",status="500"} 6.0\n'
        'legion_requests_total{model="iris",version="1",endpoint="infer",status="503"} 4.0\n'
        'legion_requests_total{model="iris",version="1",endpoint="health",status="500"} 7.0\n'
    )
    assert errors_from_metrics(text) == (100, 10)


def test_the_newest_valid_ground_truth_wins(settings: Settings) -> None:
    folder = store_dir(settings.feedback_dir, "iris")
    writer = CaptureWriter(folder, "iris", "1.0.0", ["x"], "target")
    try:
        writer.prediction("r1", [[1.0], [2.0]], [1, 2], None, 1.0, time.time())
        writer.feedback("r1", [1, 0], None, True)  # one right
        writer.feedback("r1", [1, 2], None, True)  # corrected: both right
        writer.feedback("r1", [1], None, True)  # a wrong count never replaces a good label
    finally:
        writer.close()
    found = collect(segments(folder), "accuracy", ["1.0.0"], since=0)["1.0.0"]
    assert found.scores == [1.0, 1.0] and found.mismatched == 0


def test_a_canary_spec_deploys_at_its_first_step_and_the_push_flow_leaves_promotion_to_evaluate(
    iris_dir: Path, settings: Settings, registry: Registry
) -> None:
    from legion_ci.core.status import StageStatus
    from legion_ci.pipeline.progress import PlainReporter
    from legion_ci.pipeline.runner import single_stage
    from legion_ci.pipeline.stages.base import RunOptions, StageContext

    model = canary(iris_dir)
    prod_id, cand_id = deployed(registry)
    cand = registry.deployment(cand_id).version_id
    run = registry.ensure_run("r1", "iris", str(model), "push")
    for stage, outputs in (("train", {"version_id": cand}), ("smoke", {})):
        registry.record_stage("r1", stage, StageStatus.PASSED, "ok", outputs)
    ctx = StageContext(settings, registry, run, "deploy", RunOptions(), lambda _line: None)
    assert ctx.traffic_weight == 5
    assert StageContext(settings, registry, run, "deploy", RunOptions(traffic_weight=30), print).traffic_weight == 30
    _, result = single_stage(settings, registry, "promote", str(model), "r1", "push", RunOptions(), PlainReporter())
    assert result.status is StageStatus.PASSED and "stays at its first step" in result.summary
    assert {d.id: d.weight for d in registry.deployments("iris")} == {prod_id: 95, cand_id: 5}
    assert registry.alias("iris", "production").version == "1.0.0"  # type: ignore[union-attr]


def _segment(folder: Path, name: str, header: dict[str, object], *records: dict[str, object]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"kind": "segment", **header}), *(json.dumps(r) for r in records)]
    (folder / name).write_text("\n".join(lines) + "\n")


IRIS: dict[str, object] = {"model": "iris", "features": ["x"], "target": "species"}
IRIS |= {"task": "classification", "classes": [0, 1, 2]}


V1: dict[str, object] = {**IRIS, "version": "1.0.0"}
V2: dict[str, object] = {**IRIS, "version": "2.0.0"}


def _pred(rid: str, version: str, ts: object, x: float = 1.0) -> dict[str, object]:
    record = {"inputs": [[x]], "outputs": [1], "latency_ms": 2.0}
    return {"kind": "prediction", "request_id": rid, "version": version, "ts": ts, **record}


def _fb(rid: str, ts: float, truth: object) -> dict[str, object]:
    return {"kind": "feedback", "request_id": rid, "ts": ts, "ground_truth": truth}


def test_a_later_invalid_label_in_an_old_segment_never_replaces_a_valid_one_in_the_evidence(
    settings: Settings,
) -> None:
    """The evidence is the export's join: labels are checked by the target (a class the model lacks is
    invalid, not a wrong answer), and a copy of the request answered by another version gets the same one."""
    folder = store_dir(settings.feedback_dir, "iris")
    _segment(folder, "seg-1.jsonl", V1, _fb("r1", 300.0, "class_7"))
    _segment(folder, "seg-2.jsonl", V1, _pred("r1", "1.0.0", 100.0), _fb("r1", 200.0, 1))
    _segment(folder, "seg-3.jsonl", V2, {**_pred("r1", "2.0.0", 100.5), "shadow": True})
    found = collect(segments(folder), "accuracy", ["1.0.0", "2.0.0"], since=0)
    assert found["1.0.0"].scores == [1.0] and found["1.0.0"].mismatched == 0
    assert found["2.0.0"].scores == [1.0], "the shadow copy is scored with the caller's ground truth"


def test_a_prediction_whose_time_is_not_a_number_does_not_fail_the_evaluation(settings: Settings) -> None:
    folder = store_dir(settings.feedback_dir, "iris")
    _segment(folder, "seg-1.jsonl", V1, _pred("odd", "1.0.0", "yesterday"), _fb("odd", 101.0, 1))
    found = collect(segments(folder), "accuracy", ["1.0.0"], since=0)["1.0.0"]
    assert found.scores == [1.0] and found.latencies_ms == [2.0]


def test_a_request_id_two_versions_captured_with_different_inputs_is_ambiguous_for_both(settings: Settings) -> None:
    folder = store_dir(settings.feedback_dir, "iris")
    _segment(folder, "seg-1.jsonl", V1, _pred("twice", "1.0.0", 100.0), _fb("twice", 101.0, 1))
    _segment(folder, "seg-2.jsonl", V2, _pred("twice", "2.0.0", 100.0, x=9.0))
    found = collect(segments(folder), "accuracy", ["1.0.0", "2.0.0"], since=0)
    assert found["1.0.0"].ambiguous == 1 and found["2.0.0"].ambiguous == 1
    assert found["1.0.0"].labelled == found["2.0.0"].labelled == 0


def test_a_huge_regression_error_is_unscorable_not_a_crash(settings: Settings) -> None:
    assert score("mse", 5.0, 1e200) is None and score("mae", 1.7e308, -1.7e308) is None
    assert score("mse", 5.0, 10**400) is None and score("mse", 3.0, 1.0) == 4.0
    folder = store_dir(settings.feedback_dir, "diabetes")
    # no task in the header: any finite number is a label, so only the score can refuse it
    header: dict[str, object] = {"model": "diabetes", "version": "1.0.0", "features": ["x"], "target": "y"}
    pred = {"kind": "prediction", "request_id": "r", "version": "1.0.0", "ts": 100.0, "inputs": [[1.0]]}
    _segment(
        folder,
        "seg-1.jsonl",
        header,
        {**pred, "outputs": [5.0]},
        {"kind": "feedback", "request_id": "r", "ts": 101.0, "ground_truth": 1e200},
    )
    found = collect(segments(folder), "mse", ["1.0.0"], since=0)["1.0.0"]
    assert found.labelled == 0 and found.mismatched == 1
