"""The store and the spec's serving: section reach the model pods through Helm (issue 10 item 5, issue 12
item 6, Helm half): what `legion-ci deploy` hands the chart (legion_ci/deploy/inventory.py) is rendered by
Helm's own engine and read back from the pod: `serve` arguments, LEGION_STORE_URL and the AWS variables
from the credentials Secret, and no PersistentVolumeClaim anywhere once the store is set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from legion_ci.core.settings import load_settings
from legion_ci.core.spec import ModelSpec, ServingSpec, load_spec
from legion_ci.deploy.inventory import serving_values, store_values
from tests.helm_sdk import render_chart

REPO = Path(__file__).resolve().parents[2]
MODEL_CHART = REPO / "helm" / "legion-model"
PLATFORM_CHART = REPO / "helm" / "legion-platform"
SPEC = load_spec(REPO / "tests" / "fixtures" / "jenkins-basic" / "input").spec
MODEL = {"model": {"name": "iris", "version": "1.2.0"}}


def _pod(values: dict[str, Any], chart: Path = MODEL_CHART, release: str = "legion-iris-1-2-0") -> dict[str, Any]:
    manifests = render_chart(chart, values, release, "legion")
    assert not [m for m in manifests if m["kind"] == "PersistentVolumeClaim"] or chart == PLATFORM_CHART
    deployment = next(m for m in manifests if m["kind"] == "Deployment")
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def _args(spec: ModelSpec) -> list[str]:
    args: list[str] = _pod({**MODEL, "serving": serving_values(spec)})["containers"][0]["args"]
    return args


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container["env"]}


def _with_serving(**fields: Any) -> ModelSpec:
    serving = ServingSpec.model_validate({**SPEC.serving.model_dump(), **fields})
    return SPEC.model_copy(update={"serving": serving})


def test_the_serving_section_becomes_the_servers_arguments() -> None:
    spec = _with_serving(max_rows=500, max_body_bytes=65536, capture={"enabled": True, "sample_rate": 0.25})
    assert _args(spec) == ["--max-rows", "500", "--max-body-bytes", "65536", "--capture-rate", "0.25"]
    off = _with_serving(capture={"enabled": False, "sample_rate": 0.25})
    assert _args(off)[-1] == "--no-capture" and "--capture-rate" not in _args(off)


def _leaves(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            out += _leaves(kind, (*prefix, name))
        else:
            out.append((*prefix, name))
    return out


def _other(value: Any) -> Any:
    """A valid value different from a default one."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 4096
    if isinstance(value, float):
        return 0.5 if value != 0.5 else 0.25
    raise AssertionError(f"no other value for {value!r}: teach this test the new field's type")


@pytest.mark.parametrize("path", _leaves(ServingSpec), ids=".".join)
def test_every_serving_setting_of_the_spec_reaches_the_pods(path: tuple[str, ...]) -> None:
    """Any field serving: gains later must reach the pods too: changing it alone changes what they run."""
    data = SPEC.serving.model_dump()
    node = data
    for key in path[:-1]:
        node = node[key]
    if path[-1] == "sample_rate":
        data["capture"]["enabled"] = True
    node[path[-1]] = _other(node[path[-1]])
    changed = SPEC.model_copy(update={"serving": ServingSpec.model_validate(data)})
    assert _args(changed) != _args(SPEC), f"serving.{'.'.join(path)} does not reach the model pods"


def test_without_a_store_the_pods_have_no_store_variables() -> None:
    container = _pod(MODEL)["containers"][0]
    assert not {"LEGION_STORE_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(_env(container))


def test_the_pods_ship_to_the_store_with_the_credentials_secret(tmp_path: Path) -> None:
    settings = load_settings(
        tmp_path / "home", store_url="s3://legion-artifacts/prod", store_secret="legion-store", ship_interval="10s"
    )
    store = store_values(settings)
    assert store == {"url": "s3://legion-artifacts/prod", "existingSecret": "legion-store", "shipInterval": "10s"}
    pod = _pod({**MODEL, "store": store})
    env = _env(pod["containers"][0])
    assert env["LEGION_STORE_URL"]["value"] == "s3://legion-artifacts/prod"
    assert env["LEGION_SHIP_INTERVAL"]["value"] == "10s"
    assert env["LEGION_SERVER_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "legion-store" and ref["key"] == name
        assert ref.get("optional", False) is (name == "AWS_ENDPOINT_URL"), "only the endpoint may be absent"
    assert all("persistentVolumeClaim" not in v for v in pod["volumes"])


def test_a_local_store_folder_is_not_passed_to_pods(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "home", store_url=str(tmp_path / "store"))
    assert store_values(settings)["url"] == ""


def test_the_platform_needs_no_persistent_volume_with_a_store_and_postgresql() -> None:
    values = {
        "registry": {"url": "postgresql+psycopg://legion@postgres:5432/legion"},
        "store": {"url": "s3://legion-artifacts/prod", "existingSecret": "legion-store"},
        "feedback": {"persistence": {"enabled": False}},
    }
    manifests = render_chart(PLATFORM_CHART, values, "legion", "legion")
    assert not [m for m in manifests if m["kind"] == "PersistentVolumeClaim"]
    pod = next(m for m in manifests if m["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert all("persistentVolumeClaim" not in v for v in pod["volumes"])
    env = _env(pod["containers"][0])
    assert env["LEGION_STORE_URL"]["value"] == "s3://legion-artifacts/prod"
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "legion-store"


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"store": {"url": "s3://bucket/x\n  hostNetwork: true"}}, "url"),
        ({"store": {"existingSecret": "Legion Store"}}, "existingSecret"),
        ({"serving": {"maxRows": 0}}, "maxRows"),
        ({"serving": {"capture": {"sampleRate": 2}}}, "sampleRate"),
    ],
)
def test_store_and_serving_values_outside_their_grammar_are_refused(values: dict[str, Any], field: str) -> None:
    from tests.helm_sdk import ChartError

    with pytest.raises(ChartError, match=field):
        render_chart(MODEL_CHART, {**MODEL, **values}, "legion-iris-1-2-0", "legion")
