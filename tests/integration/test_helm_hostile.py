"""Hostile strings through the Helm charts (issue 11, item 17): every value is either checked against its
grammar by values.schema.json (and refused naming the field) or written through a YAML serializer
(`quote`, `toYaml`, `b64enc`), so the rendered manifests parse and each free-text value reads back as
data: no value can add a key (hostNetwork, privileged, a hostPath volume) to the pod."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from tests.helm_sdk import ChartError, render_chart

REPO = Path(__file__).resolve().parents[2]
CHARTS = {"model": REPO / "helm" / "legion-model", "platform": REPO / "helm" / "legion-platform"}
BASE: dict[str, dict[str, Any]] = {
    "model": {"model": {"name": "iris", "version": "1.2.0"}},
    "platform": {"registry": {"url": "sqlite:////tmp/r.db"}},
}
RELEASE = {"model": "legion-iris-1-2-0", "platform": "legion"}
HOSTILE = (
    "x\n      hostNetwork: true\n      volumes: [{name: root, hostPath: {path: /}}]",
    'it\'s "quoted" ${x} \'\'\' """ \\ ]]> <b>&amp;',
    "- a: [b, {c: d}] # e & *f !g | > % @ `",
    "\ttab\r\nnew line: yes",
    "null",
    "true",
    "0x10",
    "é 中 😀 \u2028",
)


def _render(chart: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    return render_chart(CHARTS[chart], {**BASE[chart], **values}, RELEASE[chart], "legion")


def _pod(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = next(m for m in manifests if m["kind"] == "Deployment")
    pod: dict[str, Any] = deployment["spec"]["template"]
    return pod


def _assert_pod_unchanged(pod: dict[str, Any]) -> None:
    spec = pod["spec"]
    assert "hostNetwork" not in spec and "hostPID" not in spec
    assert all("hostPath" not in v for v in spec.get("volumes", []))
    for c in spec["containers"]:
        assert c["securityContext"]["privileged"] is False


@pytest.mark.parametrize("text", HOSTILE)
def test_model_free_text_values_read_back_as_data(text: str) -> None:
    manifests = _render(
        "model",
        {
            "model": {"name": "iris", "version": "1.2.0", "artifactId": text},
            "extraEnv": [{"name": "HOSTILE", "value": text}],
            "podAnnotations": {"example.com/note": text},
            "nodeSelector": {"example.com/zone": text},
            "auth": {"enabled": True, "jwtSecret": text},
        },
    )
    pod = _pod(manifests)
    _assert_pod_unchanged(pod)
    assert pod["metadata"]["annotations"]["legion.ai/artifact-id"] == text
    assert pod["metadata"]["annotations"]["example.com/note"] == text
    assert pod["spec"]["nodeSelector"]["example.com/zone"] == text
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["HOSTILE"]["value"] == text
    secret = next(m for m in manifests if m["kind"] == "Secret")
    assert base64.b64decode(secret["data"]["jwt-secret"]).decode() == text


@pytest.mark.parametrize("text", HOSTILE)
def test_platform_free_text_values_read_back_as_data(text: str) -> None:
    manifests = _render(
        "platform",
        {"registry": {"url": text}, "router": {"extraEnv": [{"name": "HOSTILE", "value": text}]}},
    )
    pod = _pod(manifests)
    _assert_pod_unchanged(pod)
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["HOSTILE"]["value"] == text
    secret = next(m for m in manifests if m["kind"] == "Secret")
    assert base64.b64decode(next(iter(secret["data"].values()))).decode() == text


INJECT = "x\n      hostNetwork: true"
BACKEND = {"service": "legion-iris-1-0-0", "port": 80, "version": "1.0.0", "weight": 100}
ROUTE = {"backends": [BACKEND]}
GATEWAY = {"enabled": True, "parentRefs": [{"name": "gw"}], "hostnames": [], "sessionPersistence": False}


@pytest.mark.parametrize(
    ("chart", "values", "field"),
    [
        ("model", {"priorityClassName": INJECT}, "priorityClassName"),
        ("model", {"imagePullSecrets": [INJECT]}, "imagePullSecrets"),
        ("model", {"serviceAccountName": INJECT}, "serviceAccountName"),
        ("model", {"image": {"repository": INJECT}}, "image"),
        ("model", {"storage": {"tmpSizeLimit": INJECT}}, "storage"),
        ("platform", {"router": {"priorityClassName": INJECT}}, "priorityClassName"),
        ("platform", {"imagePullSecrets": [INJECT]}, "imagePullSecrets"),
        ("platform", {"router": {"probes": {"readiness": {"path": "/ready\n  hostNetwork: true"}}}}, "path"),
        ("platform", {"feedback": {"persistence": {"enabled": True, "storageClass": INJECT}}}, "storageClass"),
        # A map key: the schema names the value (propertyNames), not the path.
        ("platform", {"gateway": {**GATEWAY, "routes": {INJECT: ROUTE}}}, "hostNetwork: true"),
        (
            "platform",
            {"gateway": {**GATEWAY, "routes": {"iris": {"backends": [{**BACKEND, "version": INJECT}]}}}},
            "version",
        ),
    ],
)
def test_values_outside_their_grammar_are_refused_naming_the_field(
    chart: str, values: dict[str, Any], field: str
) -> None:
    with pytest.raises(ChartError) as err:
        _render(chart, values)
    assert field in str(err.value)
