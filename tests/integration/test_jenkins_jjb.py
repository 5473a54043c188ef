"""Each job config.xml legion-ci renders is structurally what jenkins-job-builder generates for the
same job: definition, SCM, script path, triggers with the cron spec, parameters and concurrency.

jenkins-job-builder (the real `jenkins-jobs test` command) writes its XML from a YAML job definition
built here from the spec; only the elements Jenkins acts on are compared, not formatting, the
description, or defaults one tool writes and the other leaves to Jenkins.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from legion_ci.core.spec import LoadedSpec, load_spec
from legion_ci.jenkins import jobs, render

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SCM_URL = "https://git.example.com/ml/models.git"


def _cases() -> list[tuple[LoadedSpec, Path]]:
    out = [
        (load_spec(p / "input"), p / "input")
        for p in sorted(FIXTURES.glob("jenkins-*"))
        if (p / "input" / "legion.yaml").is_file()
    ]
    out += [(load_spec(ROOT / "examples" / n), ROOT) for n in ("iris", "diabetes") if (ROOT / "examples" / n).is_dir()]
    return out


def _jjb_params(params: tuple[jobs.Param, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in params:
        if p.kind == "choice":
            out.append({"choice": {"name": p.name, "choices": list(p.choices), "description": p.description}})
        else:
            out.append({"string": {"name": p.name, "default": p.default, "description": p.description, "trim": True}})
    return out


def _jjb_job(name: str, params: tuple[jobs.Param, ...], script: str, trigger: str, cron: str | None) -> dict[str, Any]:
    job: dict[str, Any] = {
        "name": name,
        "project-type": "pipeline",
        "concurrent": False,
        "parameters": _jjb_params(params),
        "pipeline-scm": {
            "scm": [{"git": {"url": SCM_URL, "branches": ["*/main"], "credentials-id": jobs.SCM_CREDENTIALS_ID}}],
            "script-path": script,
            "lightweight-checkout": True,
        },
    }
    if trigger == "cron":
        job["triggers"] = [{"timed": cron}]
    elif trigger == "push":
        job["triggers"] = [{"pollscm": {"cron": ""}}]
    return {"job": job}


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, str]]:
    """(full name, legion-ci XML, jenkins-job-builder XML) for every folder and job of every case."""
    work = tmp_path_factory.mktemp("jjb")
    ours: dict[str, str] = {}
    definitions: list[dict[str, Any]] = []
    for loaded, repo_root in _cases():
        rendered = render.render_all([loaded], render.RenderOptions(scm_url=SCM_URL, repo_root=repo_root))
        ours.update({i.full_name: i.xml for i in rendered.items})
        spec = loaded.spec
        model_path = loaded.model_dir.relative_to(repo_root).as_posix() or "."
        definitions.append({"job": {"name": jobs.folder_name(spec.name), "project-type": "folder"}})
        for kind in jobs.kinds_for(spec):
            script = f"{model_path}/{kind.jenkinsfile}" if model_path != "." else kind.jenkinsfile
            definitions.append(
                _jjb_job(
                    jobs.full_name(spec.name, kind),
                    render.kind_parameters(jobs.parameters(spec), kind),
                    script,
                    kind.trigger,
                    jobs.cron_of(spec, kind),
                )
            )
    platform = render.render_platform(render.RenderOptions(scm_url=SCM_URL), ROOT)
    ours.update({i.full_name: i.xml for i in platform.items})
    definitions.append(_jjb_job(jobs.PLATFORM_JOB, jobs.platform_parameters(), render.PLATFORM_SCRIPT, "manual", None))
    source = work / "jobs.yaml"
    source.write_text(yaml.safe_dump(definitions, sort_keys=False), encoding="utf-8")
    out = work / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "jenkins_jobs", "test", "--config-xml", "-o", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"jenkins-jobs test failed:\n{proc.stderr[-3000:]}"
    return [(name, xml, (out / name / "config.xml").read_text(encoding="utf-8")) for name, xml in sorted(ours.items())]


def _text(node: ET.Element | None, path: str) -> str | None:
    if node is None:
        return None
    found = node.find(path)
    return None if found is None else (found.text or "").strip()


def essentials(xml: str) -> dict[str, Any]:
    """What Jenkins acts on, in a form both tools' XML reduces to."""
    root = ET.fromstring(xml.encode("utf-8"))
    if root.tag.endswith("Folder"):
        return {"root": root.tag}
    definition = root.find("definition")
    scm = definition.find("scm") if definition is not None else None
    params = []
    for node in root.iterfind("properties/hudson.model.ParametersDefinitionProperty/parameterDefinitions/*"):
        choices = [s.text or "" for s in node.iterfind("choices//string")]
        params.append(
            (
                node.tag,
                _text(node, "name"),
                _text(node, "defaultValue") or "",
                choices,
                _text(node, "description") or "",
                _text(node, "trim"),
            )
        )
    triggers = [
        (t.tag, _text(t, "spec"))
        for t in root.iterfind(
            "properties/org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty/triggers/*"
        )
    ]
    return {
        "root": root.tag,
        "definition": definition.get("class") if definition is not None else None,
        "scm": scm.get("class") if scm is not None else None,
        "url": _text(scm, "userRemoteConfigs/hudson.plugins.git.UserRemoteConfig/url"),
        "credentials": _text(scm, "userRemoteConfigs/hudson.plugins.git.UserRemoteConfig/credentialsId"),
        "branches": [b.text for b in scm.iterfind("branches/hudson.plugins.git.BranchSpec/name")]
        if scm is not None
        else [],
        "script_path": _text(definition, "scriptPath"),
        "lightweight": _text(definition, "lightweight"),
        "triggers": sorted(triggers),
        "parameters": params,
        "no_concurrent_builds": root.find(
            "properties/org.jenkinsci.plugins.workflow.job.properties.DisableConcurrentBuildsJobProperty"
        )
        is not None,
        "disabled": _text(root, "disabled") or "false",
    }


def test_every_rendered_item_has_a_jenkins_job_builder_twin(pairs: list[tuple[str, str, str]]) -> None:
    names = [p[0] for p in pairs]
    assert "iris/iris-retrain" in names and "k8s-model/k8s-model-retrain" in names and jobs.PLATFORM_JOB in names
    assert "no-schedule/no-schedule-retrain" not in names


def test_structure_equals_jenkins_job_builder(pairs: list[tuple[str, str, str]]) -> None:
    for name, ours, theirs in pairs:
        assert essentials(ours) == essentials(theirs), name


def test_retrain_jobs_carry_the_cron_and_push_jobs_the_scm_hook(pairs: list[tuple[str, str, str]]) -> None:
    by_name = {name: essentials(ours) for name, ours, _ in pairs}
    iris = load_spec(ROOT / "examples" / "iris").spec
    assert by_name["iris/iris-retrain"]["triggers"] == [("hudson.triggers.TimerTrigger", iris.schedule.retrain)]
    assert by_name["iris/iris-pipeline"]["triggers"] == [("hudson.triggers.SCMTrigger", "")]
    assert by_name["iris/iris-rollout"]["triggers"] == [("hudson.triggers.TimerTrigger", iris.rollout.schedule)]
    assert all(e["no_concurrent_builds"] for e in by_name.values() if e["root"] == "flow-definition")
