"""The Kubernetes split by the Gateway API: the deploy core's route values, computed from a real registry,
rendered by helm/legion-platform (Helm's Go engine, helm-python-sdk) into HTTPRoutes that validate against the
HTTPRoute CRD's OpenAPI schema of Gateway API v1.6.1 (vendored in tests/fixtures/gateway-api/, standard and
experimental channels), strictly: an unknown field is refused, as the API server's strict field validation
would. The schemas' CEL rules (x-kubernetes-validations) are not evaluated here. ansible/route.yml runs for
real against the helm stand-in of test_ansible_lint.py."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from legion_ci.core.errors import DeployError
from legion_ci.core.registry import Registry
from legion_ci.core.settings import Settings, load_settings
from legion_ci.deploy import traffic
from tests.helm_sdk import ChartError, render_chart
from tests.integration.conftest import build_iris_artifact

REPO = Path(__file__).resolve().parents[2]
PLATFORM = REPO / "helm" / "legion-platform"
SCHEMAS = REPO / "tests" / "fixtures" / "gateway-api"
GATEWAY = {"enabled": True, "parentRefs": [{"name": "shared-gateway", "namespace": "gateway-system"}]}
REGISTRY_URL = {"url": "postgresql+psycopg://legion:x@postgres:5432/legion"}


def _strict(node: Any) -> Any:
    """The schema with additionalProperties: false on every object that lists its properties (and does not
    keep unknown fields): what `kubectl apply --validate=strict` refuses, jsonschema refuses."""
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


@functools.cache
def _validator(channel: str) -> jsonschema.Draft7Validator:
    vendored = json.loads((SCHEMAS / f"httproute-v1-{channel}.json").read_text())
    assert vendored["bundleVersion"] == "v1.6.1" and vendored["channel"] == channel
    return jsonschema.Draft7Validator(_strict(vendored["openAPIV3Schema"]))


def _problems(route: dict[str, Any], channel: str) -> list[str]:
    return [f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in _validator(channel).iter_errors(route)]


def _routes(values: dict[str, Any]) -> list[dict[str, Any]]:
    manifests = render_chart(PLATFORM, {"registry": REGISTRY_URL, **values}, "legion", "legion")
    return [m for m in manifests if m["kind"] == "HTTPRoute"]


def _ci_values() -> dict[str, Any]:
    loaded = yaml.safe_load((PLATFORM / "ci" / "gateway-values.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_ci_routes_validate_against_the_experimental_crd_and_say_the_split() -> None:
    routes = {r["metadata"]["labels"]["legion.ai/model"]: r for r in _routes(_ci_values())}
    assert set(routes) == {"iris", "diabetes"}
    for route in routes.values():
        assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
        assert _problems(route, "experimental") == []
    iris = {rule["name"]: rule for rule in routes["iris"]["spec"]["rules"]}
    assert set(iris) == {"pinned-1-0-0", "pinned-1-1-0", "open-inference", "legion-api"}
    weights = {b["name"]: b["weight"] for b in iris["open-inference"]["backendRefs"]}
    assert weights == {"legion-iris-1-0-0": 80, "legion-iris-1-1-0": 20}
    assert iris["open-inference"]["sessionPersistence"] == {"type": "Header", "sessionName": "X-User-ID"}
    rewrite = {
        b["name"]: b["filters"][0]["urlRewrite"]["path"]["replacePrefixMatch"]
        for b in iris["legion-api"]["backendRefs"]
    }
    assert rewrite == {"legion-iris-1-0-0": "/api/model/iris/1.0.0", "legion-iris-1-1-0": "/api/model/iris/1.1.0"}
    diabetes = {rule["name"]: rule for rule in routes["diabetes"]["spec"]["rules"]}
    mirror = diabetes["open-inference"]["filters"][1]
    assert mirror["type"] == "RequestMirror"
    assert mirror["requestMirror"] == {
        "backendRef": {"name": "legion-diabetes-2-1-0", "namespace": "models", "port": 80},
        "percent": 10,
    }
    assert [b["name"] for b in diabetes["open-inference"]["backendRefs"]] == ["legion-diabetes-2-0-0"]
    assert "pinned-2-1-0" in diabetes  # the shadow stays callable by its version


def test_every_rule_removes_the_headers_only_the_platform_sets() -> None:
    """Callers must not set X-Legion-Shadow or X-Legion-Request-ID-Minted: every rule of every route removes
    them (the Python router strips them itself; on Kubernetes the Gateway is the only way in)."""
    strip = {
        "type": "RequestHeaderModifier",
        "requestHeaderModifier": {"remove": ["X-Legion-Shadow", "X-Legion-Request-ID-Minted"]},
    }
    routes = _routes(_ci_values())
    assert {r["metadata"]["labels"]["legion.ai/model"] for r in routes} == {"iris", "diabetes"}
    for route in routes:
        assert _problems(route, "experimental") == []
        for rule in route["spec"]["rules"]:
            assert rule["filters"][0] == strip, (route["metadata"]["name"], rule["name"])
            assert [f["type"] for f in rule["filters"]].count("RequestHeaderModifier") == 1


def test_without_session_persistence_a_route_is_standard_channel() -> None:
    values = _ci_values()
    values["gateway"]["sessionPersistence"] = False
    for route in _routes(values):
        assert _problems(route, "standard") == []
    (sticky,) = [r for r in _routes(_ci_values()) if r["metadata"]["labels"]["legion.ai/model"] == "iris"]
    assert any("sessionPersistence" in p for p in _problems(sticky, "standard"))  # experimental only


def test_strict_validation_refuses_a_misspelt_field_and_a_bad_weight() -> None:
    route = _routes(_ci_values())[0]
    broken = copy.deepcopy(route)
    broken["spec"]["rules"][0]["backendRefs"][0]["wieght"] = 5
    assert any("wieght" in p for p in _problems(broken, "experimental"))
    broken = copy.deepcopy(route)
    broken["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1
    assert any("-1" in p for p in _problems(broken, "experimental"))


def test_gateway_without_parent_refs_is_refused_naming_the_value() -> None:
    with pytest.raises(ChartError, match="gateway.enabled needs gateway.parentRefs"):
        _routes({"gateway": {"enabled": True}})
    with pytest.raises(ChartError, match="weight"):
        _routes(
            {"gateway": {**GATEWAY, "routes": {"iris": {"backends": [{"service": "s", "port": 80, "version": "1"}]}}}}
        )


@pytest.fixture
def registry(tmp_path: Path) -> Any:
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    yield registry
    registry.close()


def _kubernetes_fleet(registry: Registry, tmp_path: Path) -> list[Any]:
    from legion_ci.core.artifact import Artifact

    made = []
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        art = Artifact.open(build_iris_artifact(tmp_path / version, version=version))
        manifest = art.manifest.model_copy(update={"artifact_id": f"{version.replace('.', '')}c0ffee"})
        record = registry.register_version(manifest, str(art.path))[0]
        release = f"legion-iris-{version.replace('.', '-')}"
        made.append(
            registry.add_deployment(
                "iris",
                record.id,
                "kubernetes",
                0,
                [{"url": f"http://{release}.legion.svc.cluster.local", "release": release}],
                {"version": version, "release": release, "namespace": "legion"},
            )
        )
    return made


def test_the_deploy_core_writes_the_registry_split_as_a_valid_route(registry: Registry, tmp_path: Path) -> None:
    prod, canary, shadow = _kubernetes_fleet(registry, tmp_path)
    settings: Settings = load_settings(str(tmp_path / "home")).model_copy(
        update={"router_sticky_cookie": "uid", "gateway_release": "legion"}
    )
    assert traffic.route_values(settings, registry, "iris") is None  # nothing carries traffic: no route
    registry.set_weights({prod.id: 95, canary.id: 5, shadow.id: 0})
    traffic.set_mirror(registry, shadow.id, 25)
    values = traffic.route_values(settings, registry, "iris")
    assert values is not None
    assert [(b["service"], b["weight"]) for b in values["backends"]] == [
        ("legion-iris-1-0-0", 95),
        ("legion-iris-1-1-0", 5),
    ]
    assert [(m["service"], m["percent"]) for m in values["mirrors"]] == [("legion-iris-1-2-0", 25)]
    assert values["session"] == {"type": "Cookie", "sessionName": "uid"}
    (route,) = _routes({"gateway": {**GATEWAY, "sessionPersistence": True, "routes": {"iris": values}}})
    assert _problems(route, "experimental") == []
    rules = {rule["name"]: rule for rule in route["spec"]["rules"]}
    assert {b["name"]: b["weight"] for b in rules["open-inference"]["backendRefs"]} == {
        "legion-iris-1-0-0": 95,
        "legion-iris-1-1-0": 5,
    }
    assert "namespace" not in rules["open-inference"]["backendRefs"][0]  # same namespace as the route
    assert route["spec"]["rules"][-1]["sessionPersistence"]["type"] == "Cookie"
    variables = traffic.route_vars(settings, registry, "iris")
    assert variables["legion_gateway_release"] == "legion" and variables["legion_route"] == values
    with pytest.raises(DeployError, match=r"mirror share 120 .* \(expected 0-100\)"):
        traffic.set_mirror(registry, shadow.id, 120)
    traffic.set_mirror(registry, shadow.id, 0)
    assert "mirror" not in registry.deployment(shadow.id).detail
    plain = settings.model_copy(update={"gateway_release": None})
    with pytest.raises(DeployError, match="set LEGION_GATEWAY_RELEASE"):
        traffic.route_vars(plain, registry, "iris")
    assert not traffic.sync_route(plain, registry, "iris", tmp_path / "route", print)  # the router's job then


def test_route_playbook_upgrades_the_platform_release_keeping_its_values(tmp_path: Path) -> None:
    from tests.integration.test_ansible_lint import StandIn, _tool

    if _tool("ansible-playbook") is None:
        pytest.skip("ansible-playbook is not installed (pip install ansible)")
    helm = StandIn(tmp_path)
    route = {
        "backends": [{"service": "legion-iris-1-0-0", "port": 80, "version": "1.0.0", "weight": 100}],
        "mirrors": [],
    }
    done = helm.play(
        "route",
        {
            "legion_target": "kubernetes",
            "legion_gateway_release": "legion",
            "legion_gateway_namespace": "legion",
            "legion_model_name": "iris",
            "legion_route": route,
        },
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    (upgrade,) = helm.calls("upgrade")
    assert "--reuse-values=True" in upgrade and "--reset-values" not in upgrade  # helm lets a reset win
    (revision,) = helm.releases()["legion"]
    assert revision["values"] == {"gateway": {"routes": {"iris": route}}}
    refused = helm.play("route", {"legion_target": "kubernetes", "legion_model_name": "iris"})
    assert refused.returncode != 0 and "legion_gateway_release" in refused.stdout
