"""Ansible: ansible-lint (production profile, offline) on ansible/, syntax checks of the kubernetes playbooks,
and the model_kubernetes role run for real by ansible-playbook against a helm stand-in.

There is no helm binary and no cluster here. The stand-in answers the helm commands kubernetes.core.helm and the
role issue, keeps releases and revisions in a JSON file, and renders the chart with Helm's own Go engine
(helm-python-sdk) and kubernetes-validate --strict, so a deploy whose values the chart refuses fails as it would.
What it cannot show is a real rollout: `--wait` succeeds unless the test tells it to fail (FAKE_HELM_FAIL)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = REPO / "ansible"
BIN = Path(sys.executable).parent
PLAYBOOKS = sorted((ANSIBLE / "playbooks" / "kubernetes").glob("*.yml"))
RELEASE = "legion-iris-1-2-0"


def _tool(name: str) -> str | None:
    """An executable from this interpreter's environment, else from PATH."""
    local = BIN / name
    return str(local) if local.exists() else shutil.which(name)


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "ANSIBLE_NOCOLOR": "1", **extra}


def test_ansible_lint_production_profile_offline_passes() -> None:
    lint = _tool("ansible-lint")
    if lint is None:
        pytest.skip("the ansible-lint executable is not installed (pip install ansible-lint)")
    run = subprocess.run(
        [lint, "--offline", "--nocolor"], cwd=ANSIBLE, env=_env(), capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Profile 'production' was required, and it passed" in run.stdout + run.stderr


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=[p.stem for p in PLAYBOOKS])
def test_kubernetes_playbook_syntax(playbook: Path) -> None:
    run = subprocess.run(
        [_tool("ansible-playbook") or "ansible-playbook", "--syntax-check", str(playbook.relative_to(ANSIBLE))],
        cwd=ANSIBLE,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr


# --- the role, run by ansible-playbook against the helm stand-in ----------------------------------------

HELM_STAND_IN = r'''
"""helm stand-in: releases in a JSON file, charts rendered by Helm's Go engine (helm-python-sdk), no cluster."""
import json, os, sys
from pathlib import Path

import helm_python
import kubernetes_validate
import yaml

STATE = Path(os.environ["FAKE_HELM_STATE"])
VALUE_FLAGS = {"--timeout", "--namespace", "--kubeconfig", "--kube-context", "--filter", "-n"}


def parse(argv):
    flags, positional, i = {}, [], 0
    while i < len(argv):
        arg = argv[i]
        if arg in VALUE_FLAGS:
            flags[arg], i = argv[i + 1], i + 2
            continue
        if arg.startswith("-"):
            name, _, value = arg.partition("=")
            flags[name] = value or True
        else:
            positional.append(arg)
        i += 1
    return flags, positional


def fail(message):
    print("Error: " + message, file=sys.stderr)
    sys.exit(1)


def main():
    argv = sys.argv[1:]
    releases = json.loads(STATE.read_text()) if STATE.exists() else {}
    with STATE.with_suffix(".log").open("a") as log:
        log.write(json.dumps({"argv": argv, "namespace": os.environ.get("HELM_NAMESPACE")}) + "\n")
    flags, pos = parse(argv)
    cmd = pos[0]
    if cmd == "version":
        print('version.BuildInfo{Version:"%s", GitCommit:"", GitTreeState:"clean", GoVersion:"go"}'
              % helm_python.helm_sdk_version())
    elif cmd == "plugin":
        print("NAME\tVERSION\tDESCRIPTION")
    elif cmd == "list":
        listed = []
        for name, revs in releases.items():
            last = revs[-1]
            wanted = {k.lstrip("-") for k in flags if k in ("--all", "--deployed", "--failed", "--pending")}
            if name == flags["--filter"] and ("all" in wanted or last["status"] in (wanted or {"deployed", "failed"})):
                listed.append({"name": name, "namespace": last["namespace"], "revision": str(last["revision"]),
                               "updated": "2024-01-01", "status": last["status"], "chart": last["chart"],
                               "app_version": last["app_version"]})
        print(yaml.safe_dump(listed))
    elif cmd == "get":
        revs = releases.get(pos[2]) or fail("release: not found")
        print(yaml.safe_dump(revs[-1]["values"]) if pos[1] == "values" else "")
    elif cmd == "show":
        print(Path(pos[2], "Chart.yaml").read_text())
    elif cmd == "upgrade":
        name, chart_dir = pos[1], pos[2]
        values = yaml.safe_load(Path(flags["-f"]).read_text()) if "-f" in flags else {}
        namespace = os.environ.get("HELM_NAMESPACE", "default")
        revs = releases.setdefault(name, [])
        try:
            with helm_python.Chart.load(chart_dir) as chart:
                rendered = chart.render(values, name=name, namespace=namespace, is_install=not revs)
                meta = chart.metadata
        except helm_python.HelmError as exc:
            fail(f"UPGRADE FAILED: {exc}")
        for template, text in rendered.items():
            for doc in [] if template.endswith("NOTES.txt") else yaml.safe_load_all(text):
                if isinstance(doc, dict) and doc.get("kind") not in (None, "ServiceMonitor"):
                    kubernetes_validate.validate(doc, "1.29.0", strict=True)
        failing = os.environ.get("FAKE_HELM_FAIL") == "upgrade"
        for rev in revs:
            rev["status"] = "superseded" if rev["status"] == "deployed" and not failing else rev["status"]
        revs.append({"revision": len(revs) + 1, "namespace": namespace, "values": values,
                     "status": "failed" if failing else "deployed",
                     "chart": f"{meta['name']}-{meta['version']}", "app_version": meta.get("appVersion", "")})
        STATE.write_text(json.dumps(releases))
        if failing:
            fail(f"UPGRADE FAILED: resource Deployment/{namespace}/{name} not ready: context deadline exceeded")
    elif cmd == "rollback":
        name = pos[1]
        revs = releases.get(name) or fail(f"release: not found")
        target = int(pos[2]) if len(pos) > 2 and int(pos[2]) else len(revs) - 1
        source = revs[target - 1]
        for rev in revs:
            rev["status"] = "superseded" if rev["status"] == "deployed" else rev["status"]
        revs.append({**source, "revision": len(revs) + 1, "status": "deployed"})
        STATE.write_text(json.dumps(releases))
    elif cmd == "uninstall":
        name = pos[1]
        releases.pop(name, None) or fail(f"uninstall: Release not loaded: {name}: release: not found")
        STATE.write_text(json.dumps(releases))
    else:
        fail("unknown command " + cmd)


main()
'''


class StandIn:
    """The helm stand-in on PATH, its release store and its command log."""

    def __init__(self, root: Path) -> None:
        (root / "bin").mkdir()
        self.helm = root / "bin" / "helm"
        self.helm.write_text(f"#!{sys.executable}\n{HELM_STAND_IN}")
        self.helm.chmod(0o755)
        self.state = root / "releases.json"

    def releases(self) -> dict[str, list[dict[str, Any]]]:
        return json.loads(self.state.read_text()) if self.state.exists() else {}

    def commands(self) -> list[list[str]]:
        log = self.state.with_suffix(".log")
        return [json.loads(line)["argv"] for line in log.read_text().splitlines()] if log.exists() else []

    def calls(self, verb: str) -> list[list[str]]:
        return [c for c in self.commands() if c and c[0] == verb]

    def play(self, playbook: str, extra_vars: dict[str, Any], fail: str = "") -> subprocess.CompletedProcess[str]:
        """Run ansible/playbooks/kubernetes/<playbook>.yml with extra vars; fail='upgrade' makes upgrades fail."""
        env = _env(FAKE_HELM_STATE=str(self.state), FAKE_HELM_FAIL=fail)
        env["PATH"] = f"{self.helm.parent}{os.pathsep}{env['PATH']}"
        return subprocess.run(
            [_tool("ansible-playbook") or "ansible-playbook", f"playbooks/kubernetes/{playbook}.yml",
             "-e", json.dumps(extra_vars)],
            cwd=ANSIBLE, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip


MODEL = {
    "legion_model_name": "iris",
    "legion_model_version": "1.2.0",
    "legion_image_repository": "registry.local:5000/legion/iris",
    "legion_artifact_id": "iris-1.2.0-abc123",
    "legion_replicas": 2,
    "legion_jwt_existing_secret": "legion-jwt",
}
WHICH = {"legion_model_name": "iris", "legion_model_version": "1.2.0"}


@pytest.fixture
def helm(tmp_path: Path) -> StandIn:
    if _tool("ansible-playbook") is None:
        pytest.skip("ansible-playbook is not installed (pip install ansible)")
    return StandIn(tmp_path)


def test_deploy_installs_the_release_named_after_model_and_version(helm: StandIn) -> None:
    run = helm.play("deploy", MODEL)
    assert run.returncode == 0, run.stdout + run.stderr
    (revision,) = helm.releases()[RELEASE]
    assert revision["status"] == "deployed" and revision["namespace"] == "legion"
    values = revision["values"]
    assert values["model"] == {"name": "iris", "version": "1.2.0", "artifactId": "iris-1.2.0-abc123"}
    assert values["image"]["repository"] == "registry.local:5000/legion/iris"
    assert values["replicaCount"] == 2
    assert values["auth"]["enabled"] is True and values["auth"]["existingSecret"] == "legion-jwt"
    (upgrade,) = helm.calls("upgrade")
    assert {"-i", "--wait", "--create-namespace", "--timeout", "5m0s"} <= set(upgrade)


def test_deploy_passes_the_store_and_the_serving_section_to_the_chart(helm: StandIn) -> None:
    """What `legion-ci deploy` writes (inventory.deploy_vars) goes through the playbook and the role to the
    chart's values, and the chart (rendered by the stand-in) accepts them."""
    serving = {"maxRows": 500, "maxBodyBytes": 65536, "capture": {"enabled": True, "sampleRate": 0.25}}
    store = {"url": "s3://legion-artifacts/prod", "existingSecret": "legion-store", "shipInterval": "10s"}
    run = helm.play("deploy", {**MODEL, "legion_serving": serving, "legion_store": store})
    assert run.returncode == 0, run.stdout + run.stderr
    (revision,) = helm.releases()[RELEASE]
    assert revision["values"]["serving"] == serving
    assert revision["values"]["store"] == store


def test_deploy_rerun_with_the_same_inputs_changes_nothing(helm: StandIn) -> None:
    assert helm.play("deploy", MODEL).returncode == 0
    run = helm.play("deploy", MODEL)
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(helm.calls("upgrade")) == 1
    assert len(helm.releases()[RELEASE]) == 1


def test_failed_upgrade_rolls_back_to_the_revision_that_was_serving(helm: StandIn) -> None:
    assert helm.play("deploy", MODEL).returncode == 0
    run = helm.play("deploy", {**MODEL, "legion_image_tag": "broken"}, fail="upgrade")
    assert run.returncode != 0
    assert "Rolled back to revision 1, which is serving again" in run.stdout
    (rollback,) = helm.calls("rollback")
    assert rollback[:3] == ["rollback", RELEASE, "1"] and "--wait" in rollback
    assert rollback[rollback.index("--namespace") + 1] == "legion"
    revisions = helm.releases()[RELEASE]
    assert [r["status"] for r in revisions] == ["superseded", "failed", "deployed"]
    assert revisions[-1]["values"] == revisions[0]["values"]


def test_failed_first_install_removes_the_release(helm: StandIn) -> None:
    run = helm.play("deploy", MODEL, fail="upgrade")
    assert run.returncode != 0
    assert "It was a first install; the release was removed" in run.stdout
    assert helm.calls("rollback") == []
    assert [c[:1] for c in helm.calls("uninstall")] == [["uninstall"]]
    assert helm.releases() == {}


def test_values_the_chart_refuses_fail_the_deploy_naming_the_value(helm: StandIn) -> None:
    run = helm.play("deploy", {**MODEL, "legion_chart_values": {"service": {"type": "Ingress"}}})
    assert run.returncode != 0
    assert "/service/type" in run.stdout
    assert helm.releases() == {}


def test_release_name_too_long_for_helm_is_refused_before_any_helm_call(helm: StandIn) -> None:
    run = helm.play("deploy", {**MODEL, "legion_model_name": "a-very-long-model-name-for-a-very-long-project"})
    assert run.returncode != 0
    assert "is longer than 53 characters" in run.stdout
    assert helm.commands() == []


def test_rollback_playbook_goes_back_one_revision(helm: StandIn) -> None:
    assert helm.play("deploy", MODEL).returncode == 0
    assert helm.play("deploy", {**MODEL, "legion_replicas": 4}).returncode == 0
    run = helm.play("rollback", WHICH)
    assert run.returncode == 0, run.stdout + run.stderr
    revisions = helm.releases()[RELEASE]
    assert [r["values"]["replicaCount"] for r in revisions] == [2, 4, 2]
    assert revisions[-1]["status"] == "deployed"


def test_undeploy_removes_the_release_and_is_safe_to_rerun(helm: StandIn) -> None:
    assert helm.play("deploy", MODEL).returncode == 0
    for _ in range(2):
        run = helm.play("undeploy", WHICH)
        assert run.returncode == 0, run.stdout + run.stderr
    assert helm.releases() == {}
    assert len(helm.calls("uninstall")) == 1
