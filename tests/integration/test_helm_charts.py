"""Helm charts, checked offline as hard as we can: strict `helm lint` and render through Helm's own Go SDK
(helm-python-sdk), every rendered object validated against the Kubernetes 1.29 and 1.33 schemas with
kubernetes-validate in strict mode, the ServiceMonitor CRD against the Prometheus Operator's models, and
assertions on what the objects must say. Nothing here needs a helm binary or an API server."""

from __future__ import annotations

import base64
import functools
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from legion_ci.core.errors import DeployError
from tests.helm_sdk import ChartError, lint_chart, render_chart

REPO = Path(__file__).resolve().parents[2]
CHARTS = {"model": REPO / "helm" / "legion-model", "platform": REPO / "helm" / "legion-platform"}
FIXTURES = REPO / "tests" / "fixtures" / "helm"  # values each chart must refuse (<chart>-invalid)
CI_VALUES = "ci"  # chart-testing's convention: helm/<chart>/ci/<case>-values.yaml, each one valid
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")
# Kinds defined by a CustomResourceDefinition: kubernetes-validate ships only the built-in API schemas, so
# these are validated against the Prometheus Operator's CRD models instead (test_service_monitors_match_crd).
CRD_KINDS = {"ServiceMonitor", "HTTPRoute"}  # HTTPRoute: tests/integration/test_gateway_routes.py
RELEASE = {"model": "legion-iris-1-2-0", "platform": "legion"}
NAMESPACE = "legion"


def _cases() -> list[tuple[str, str]]:
    """(chart, case): the default values of each chart, then each chart's ci/<case>-values.yaml."""
    found = [("model", "defaults"), ("platform", "defaults")]
    for chart, folder in sorted(CHARTS.items()):
        for path in sorted((folder / CI_VALUES).glob("*-values.yaml")):
            found.append((chart, path.name.removesuffix("-values.yaml")))
    return found


CASES = _cases()
CASE_IDS = [f"{chart}-{case}" for chart, case in CASES]
MODEL_CASES = [c for c in CASES if c[0] == "model"]
PLATFORM_CASES = [c for c in CASES if c[0] == "platform"]


def values_of(chart: str, case: str) -> dict[str, Any]:
    """The values a case passes on top of the chart defaults."""
    if case == "defaults":
        return {}
    loaded = yaml.safe_load((CHARTS[chart] / CI_VALUES / f"{case}-values.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def merged_values(chart: str, case: str) -> dict[str, Any]:
    """Chart defaults with the case's values merged over them, as Helm does."""

    def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for key, value in over.items():
            out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out

    defaults = yaml.safe_load((CHARTS[chart] / "values.yaml").read_text())
    return merge(defaults, values_of(chart, case))


@functools.cache
def _rendered(chart: str, case: str) -> tuple[dict[str, Any], ...]:
    return tuple(render_chart(CHARTS[chart], values_of(chart, case), RELEASE[chart], NAMESPACE))


def rendered(chart: str, case: str) -> list[dict[str, Any]]:
    """Manifests of a case (rendered once per test session)."""
    return list(_rendered(chart, case))


def of_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# --- lint and schema validation -------------------------------------------------------------------------


@pytest.mark.parametrize(("chart", "case"), CASES, ids=CASE_IDS)
def test_lint_strict_is_clean(chart: str, case: str) -> None:
    assert lint_chart(CHARTS[chart], values_of(chart, case), strict=True, namespace=NAMESPACE) == []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(("chart", "case"), CASES, ids=CASE_IDS)
def test_builtin_kinds_validate_strictly_against_kubernetes_schema(chart: str, case: str, version: str) -> None:
    """kubernetes-validate --strict on every object except CRD kinds (no schema for those in kubernetes-validate)."""
    manifests = [m for m in rendered(chart, case) if m["kind"] not in CRD_KINDS]
    assert manifests
    problems = []
    for manifest in manifests:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            problems.append(f"{manifest['kind']}/{manifest['metadata']['name']} at {path}: {exc.message}")
    assert problems == []


def test_strict_kubernetes_validation_catches_a_misspelt_field() -> None:
    """The validator is really strict: an unknown field in a rendered Deployment is refused."""
    deployment = one(rendered("model", "defaults"), "Deployment")
    container = dict(deployment["spec"]["template"]["spec"]["containers"][0])
    container["securityContext"] = {**container["securityContext"], "readOnlyRootFs": True}
    broken = {
        **deployment,
        "spec": {
            **deployment["spec"],
            "template": {
                **deployment["spec"]["template"],
                "spec": {**deployment["spec"]["template"]["spec"], "containers": [container]},
            },
        },
    }
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFs"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


MONITORED = [c for c in CASES if merged_values(*c)["serviceMonitor"]["enabled"]]


@pytest.mark.parametrize(("chart", "case"), MONITORED, ids=[f"{chart}-{case}" for chart, case in MONITORED])
def test_service_monitors_match_prometheus_operator_crd(chart: str, case: str) -> None:
    """ServiceMonitor (a CRD) against the models generated from the Prometheus Operator's CRD schema."""
    from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor

    for manifest in of_kind(rendered(chart, case), "ServiceMonitor"):
        parsed = ServiceMonitor.model_validate(manifest)
        # The models ignore unknown fields; a lossless round trip proves there were none.
        assert parsed.model_dump(by_alias=True, exclude_unset=True, mode="json") == manifest


# --- what the objects must say --------------------------------------------------------------------------


@pytest.mark.parametrize(("chart", "case"), CASES, ids=CASE_IDS)
def test_pods_are_hardened_with_writable_tmp_and_legion_home(chart: str, case: str) -> None:
    deployment = one(rendered(chart, case), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in pod["volumes"]}
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert set(mounts) >= {"/tmp", "/var/lib/legion"}
        assert "emptyDir" in volumes[mounts["/tmp"]]
        assert {"emptyDir", "persistentVolumeClaim"} & set(volumes[mounts["/var/lib/legion"]])
        assert env_of(container)["LEGION_HOME"]["value"] == "/var/lib/legion"
        assert "limits" in container["resources"] and "requests" in container["resources"]


@pytest.mark.parametrize(("chart", "case"), MODEL_CASES, ids=[f"model-{c}" for _, c in MODEL_CASES])
def test_model_server_command_port_and_probes(chart: str, case: str) -> None:
    container = one(rendered(chart, case), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["legion-ci", "serve", "/opt/legion/model", "--host", "0.0.0.0", "--port", "8080"]
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}


@pytest.mark.parametrize(("chart", "case"), MODEL_CASES, ids=[f"model-{c}" for _, c in MODEL_CASES])
def test_model_labels_and_service_selects_the_pods(chart: str, case: str) -> None:
    values = merged_values(chart, case)
    manifests = rendered(chart, case)
    deployment, service = one(manifests, "Deployment"), one(manifests, "Service")
    version_label = values["model"]["version"].replace("+", "_")
    for labels in (deployment["metadata"]["labels"], deployment["spec"]["template"]["metadata"]["labels"]):
        assert labels["legion.ai/model"] == values["model"]["name"]
        assert labels["legion.ai/version"] == version_label
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert matches(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    assert matches(service["spec"]["selector"], pod_labels)
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    annotations = deployment["spec"]["template"]["metadata"].get("annotations") or {}
    if values["model"]["artifactId"]:
        assert annotations["legion.ai/artifact-id"] == values["model"]["artifactId"]
    else:
        assert "legion.ai/artifact-id" not in annotations


def test_model_jwt_secret_created_by_the_chart_by_default() -> None:
    manifests = rendered("model", "defaults")
    env = env_of(one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0])
    assert env["LEGION_AUTH"]["value"] == "on"
    ref = env["LEGION_JWT_SECRET"]["valueFrom"]["secretKeyRef"]
    secret = one(manifests, "Secret")
    assert ref == {"name": secret["metadata"]["name"], "key": "jwt-secret"}
    assert len(base64.b64decode(secret["data"]["jwt-secret"])) == 48  # generated: no secret was given


def test_model_jwt_secret_given_by_value_is_stored() -> None:
    secret = one(rendered("model", "full"), "Secret")
    given = values_of("model", "full")["auth"]["jwtSecret"]
    assert base64.b64decode(secret["data"]["jwt-secret"]).decode() == given


def test_model_jwt_secret_from_existing_secret_creates_none() -> None:
    manifests = rendered("model", "existing-secret-digest")
    assert of_kind(manifests, "Secret") == []
    env = env_of(one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0])
    assert env["LEGION_JWT_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "legion-jwt", "key": "token-signing-key"}


def test_model_auth_off_has_no_secret_at_all() -> None:
    manifests = rendered("model", "minimal")
    env = env_of(one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0])
    assert env["LEGION_AUTH"]["value"] == "off"
    assert "LEGION_JWT_SECRET" not in env
    assert of_kind(manifests, "Secret") == []


@pytest.mark.parametrize(
    ("case", "image"),
    [
        ("defaults", "legion/model:0.1.0"),  # tag defaults to model.version
        ("full", "registry.example.com/legion/iris:1.3.0-rc.1"),
        ("existing-secret-digest", "registry.local:5000/legion/diabetes@sha256:" + "0123456789abcdef" * 4),
    ],
)
def test_model_image_reference(case: str, image: str) -> None:
    container = one(rendered("model", case), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == image


@pytest.mark.parametrize(("chart", "case"), CASES, ids=CASE_IDS)
def test_hpa_only_when_enabled_and_then_owns_replicas(chart: str, case: str) -> None:
    values = merged_values(chart, case)
    scaling = values["autoscaling"] if chart == "model" else values["router"]["autoscaling"]
    manifests = rendered(chart, case)
    deployment = one(manifests, "Deployment")
    hpas = of_kind(manifests, "HorizontalPodAutoscaler")
    if not scaling["enabled"]:
        assert hpas == []
        replicas = values["replicaCount"] if chart == "model" else values["router"]["replicaCount"]
        assert deployment["spec"]["replicas"] == replicas
        return
    (hpa,) = hpas
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert "replicas" not in deployment["spec"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (scaling["minReplicas"], scaling["maxReplicas"])
    metrics = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in hpa["spec"]["metrics"]}
    expected = {"cpu": scaling["targetCPUUtilizationPercentage"]}
    if scaling["targetMemoryUtilizationPercentage"]:
        expected["memory"] = scaling["targetMemoryUtilizationPercentage"]
    assert metrics == expected


@pytest.mark.parametrize(("chart", "case"), CASES, ids=CASE_IDS)
def test_pdb_present_when_enabled_and_selects_the_pods(chart: str, case: str) -> None:
    values = merged_values(chart, case)
    budget = values["podDisruptionBudget"] if chart == "model" else values["router"]["podDisruptionBudget"]
    enabled = budget["enabled"]
    manifests = rendered(chart, case)
    pdbs = of_kind(manifests, "PodDisruptionBudget")
    assert len(pdbs) == int(enabled)
    pod_labels = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    for pdb in pdbs:
        assert matches(pdb["spec"]["selector"]["matchLabels"], pod_labels)


@pytest.mark.parametrize(("chart", "case"), CASES, ids=CASE_IDS)
def test_service_monitor_scrapes_metrics_of_the_service(chart: str, case: str) -> None:
    values = merged_values(chart, case)
    manifests = rendered(chart, case)
    monitors = of_kind(manifests, "ServiceMonitor")
    assert len(monitors) == int(values["serviceMonitor"]["enabled"])
    service = one(manifests, "Service")
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["path"] == "/metrics"
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        assert matches(values["serviceMonitor"]["labels"], monitor["metadata"]["labels"])


@pytest.mark.parametrize(("chart", "case"), CASES, ids=CASE_IDS)
def test_network_policy_only_when_enabled_and_guards_port_http(chart: str, case: str) -> None:
    values = merged_values(chart, case)
    manifests = rendered(chart, case)
    policies = of_kind(manifests, "NetworkPolicy")
    assert len(policies) == int(values["networkPolicy"]["enabled"])
    pod_labels = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    for policy in policies:
        assert matches(policy["spec"]["podSelector"]["matchLabels"], pod_labels)
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        (rule,) = policy["spec"]["ingress"]
        assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]


def test_model_network_policy_defaults_to_the_router_and_adds_metrics_peers() -> None:
    policy = one(rendered("model", "full"), "NetworkPolicy")
    values = values_of("model", "full")["networkPolicy"]
    assert policy["spec"]["ingress"][0]["from"] == values["allowFrom"] + values["metricsFrom"]
    with_defaults = one(render_chart(CHARTS["model"], {"networkPolicy": {"enabled": True}}), "NetworkPolicy")
    assert with_defaults["spec"]["ingress"][0]["from"] == [
        {
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/name": "legion-platform", "app.kubernetes.io/component": "router"}
            }
        }
    ]


@pytest.mark.parametrize(("chart", "case"), PLATFORM_CASES, ids=[f"platform-{c}" for _, c in PLATFORM_CASES])
def test_router_command_registry_secret_and_feedback_volume(chart: str, case: str) -> None:
    values = merged_values(chart, case)
    manifests = rendered(chart, case)
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["legion-ci", "router", "--host", "0.0.0.0", "--port", "8000"]
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    ref = env_of(container)["LEGION_REGISTRY_URL"]["valueFrom"]["secretKeyRef"]
    registry = values["registry"]
    if registry["existingSecret"]:
        assert ref == {"name": registry["existingSecret"], "key": registry["existingSecretKey"]}
        assert of_kind(manifests, "Secret") == []
    else:
        secret = one(manifests, "Secret")
        assert ref == {"name": secret["metadata"]["name"], "key": "registry-url"}
        assert base64.b64decode(secret["data"]["registry-url"]).decode() == registry["url"]
    persistence = values["feedback"]["persistence"]
    home = {v["name"]: v for v in pod["volumes"]}["legion-home"]
    pvcs = of_kind(manifests, "PersistentVolumeClaim")
    if not persistence["enabled"]:
        assert "emptyDir" in home and pvcs == []
    elif persistence["existingClaim"]:
        assert home["persistentVolumeClaim"]["claimName"] == persistence["existingClaim"] and pvcs == []
    else:
        (pvc,) = pvcs
        assert home["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
        assert pvc["spec"]["accessModes"] == persistence["accessModes"]
        assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


@pytest.mark.parametrize(("chart", "case"), PLATFORM_CASES, ids=[f"platform-{c}" for _, c in PLATFORM_CASES])
def test_router_recreates_when_its_volume_is_single_node(chart: str, case: str) -> None:
    persistence = merged_values(chart, case)["feedback"]["persistence"]
    strategy = one(rendered(chart, case), "Deployment")["spec"]["strategy"]["type"]
    single_node = persistence["enabled"] and "ReadWriteMany" not in persistence["accessModes"]
    assert strategy == ("Recreate" if single_node else "RollingUpdate")


@pytest.mark.parametrize(("chart", "case"), CASES, ids=CASE_IDS)
def test_every_variable_the_chart_sets_is_read_by_legion_ci(chart: str, case: str) -> None:
    """No dead configuration: each LEGION_* variable a container gets (besides the user's extraEnv) is
    named in legion_ci, as the variable or as its settings field (LEGION_JWT_SECRET -> jwt_secret)."""
    values = merged_values(chart, case)
    extra = values["extraEnv"] if chart == "model" else values["router"]["extraEnv"]
    given = {e["name"] for e in extra}
    code = "\n".join(p.read_text() for p in (REPO / "legion_ci").rglob("*.py"))
    pod = one(rendered(chart, case), "Deployment")["spec"]["template"]["spec"]
    names = {name for c in pod["containers"] for name in env_of(c) if name.startswith("LEGION_")} - given
    assert names
    declared = set(re.findall(r"^\s+([a-z_]+)\s*:", code, re.MULTILINE))  # class fields, e.g. of the settings
    unread = [n for n in sorted(names) if n not in code and n.removeprefix("LEGION_").lower() not in declared]
    assert unread == []


# --- bad values are refused, naming the value -----------------------------------------------------------


@pytest.mark.parametrize(
    ("chart", "field"), [("model", "/model/version"), ("platform", "/feedback/persistence/accessModes/0")]
)
def test_values_file_violating_schema_is_refused_naming_the_field(chart: str, field: str) -> None:
    values = yaml.safe_load((FIXTURES / f"{chart}-invalid" / "values.yaml").read_text())
    problems = lint_chart(CHARTS[chart], values)
    assert problems and all(p.startswith("ERROR") for p in problems)
    assert any(field in p for p in problems)
    with pytest.raises(ChartError, match=re.escape(field)) as caught:
        render_chart(CHARTS[chart], values)
    assert isinstance(caught.value, DeployError) and caught.value.exit_code != 0


@pytest.mark.parametrize(
    ("chart", "values", "message"),
    [
        ("model", {"modle": {"name": "iris"}}, "additional properties 'modle' not allowed"),
        ("model", {"image": {"digest": "sha256:short"}}, "/image/digest"),
        ("model", {"image": {"repository": "legion/iris:1.0"}}, "/image/repository"),
        ("model", {"service": {"type": "Ingress"}}, "/service/type"),
        (
            "model",
            {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}},
            "autoscaling.maxReplicas (2) is below autoscaling.minReplicas (5)",
        ),
        ("model", {"auth": {"jwtSecret": "a", "existingSecret": "b"}}, "auth.jwtSecret and auth.existingSecret"),
        ("platform", {"router": {"replicaCount": 3}}, "ReadWriteMany"),
        ("platform", {"router": {"autoscaling": {"enabled": True}}}, "ReadWriteMany"),
        ("platform", {"registry": {"url": ""}}, "set registry.url or registry.existingSecret"),
        ("platform", {"router": {"probes": {"readiness": {"path": "health"}}}}, "/router/probes/readiness/path"),
    ],
)
def test_bad_values_are_refused_with_a_message_naming_them(chart: str, values: dict[str, Any], message: str) -> None:
    problems = lint_chart(CHARTS[chart], values)
    assert any(message in p for p in problems), problems


def test_render_of_a_folder_that_is_no_chart_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ChartError, match="not a chart directory"):
        render_chart(tmp_path, {})


def test_release_name_over_53_characters_is_refused() -> None:
    with pytest.raises(ChartError, match="HelmInvalidArgError"):
        render_chart(CHARTS["model"], {}, release="legion-" + "x" * 60, namespace=NAMESPACE)


# --- documentation --------------------------------------------------------------------------------------


def _leaf_keys(values: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        keys += _leaf_keys(value, path + ".") if isinstance(value, dict) and value else [path]
    return keys


@pytest.mark.parametrize("chart", sorted(CHARTS))
def test_readme_documents_every_value(chart: str) -> None:
    """Each value of values.yaml has a row in README.md (its own, or its parent's for maps like resources)."""
    documented = set(re.findall(r"^\| `([^`]+)` \|", (CHARTS[chart] / "README.md").read_text(), re.MULTILINE))
    values = yaml.safe_load((CHARTS[chart] / "values.yaml").read_text())
    missing = [key for key in _leaf_keys(values) if not any(key == d or key.startswith(d + ".") for d in documented)]
    assert missing == []
    assert all(d.split(".")[0] in values for d in documented), "README documents a value that does not exist"
