"""`legion-ci render`: fixture pairs (tests/fixtures/jenkins-*/input -> expected), determinism, the
stage graph in every Jenkinsfile, escaping, and the errors a person can cause.

Regenerate the expected files after an intended change with LEGION_UPDATE_FIXTURES=1.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from legion_ci.cli import main
from legion_ci.core.errors import ConfigError, SpecError
from legion_ci.core.spec import load_spec
from legion_ci.jenkins import jobs, render
from legion_ci.pipeline.graph import FLOWS, ON_DEMAND, STAGES

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
CASES = sorted(p.name for p in FIXTURES.glob("jenkins-*") if p.is_dir())
SCM_URL = "https://git.example.com/ml/models.git"


def render_case(case: str) -> render.Rendered:
    """How every fixture case is rendered: fixed SCM URL, the input folder as repository root."""
    src = FIXTURES / case / "input"
    options = render.RenderOptions(scm_url=SCM_URL, repo_root=src)
    specs = [load_spec(src)] if (src / "legion.yaml").is_file() else []
    return render.render_all(specs, options, platform=not specs)


def expected_files(case: str) -> dict[str, str]:
    folder = FIXTURES / case / "expected"
    return {
        p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_there_are_fixture_cases() -> None:
    assert {"jenkins-basic", "jenkins-kubernetes", "jenkins-no-schedule", "jenkins-platform"} <= set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_fixture_pair(case: str) -> None:
    rendered = render_case(case)
    if os.environ.get("LEGION_UPDATE_FIXTURES") == "1":
        shutil.rmtree(FIXTURES / case / "expected", ignore_errors=True)
        render.write_tree(rendered, FIXTURES / case / "expected")
    assert rendered.files == expected_files(case), (
        f"rendering {case} differs from tests/fixtures/{case}/expected (LEGION_UPDATE_FIXTURES=1 regenerates it)"
    )


@pytest.mark.parametrize("case", CASES)
def test_rendering_is_deterministic(case: str) -> None:
    assert render_case(case).files == render_case(case).files


STAGE_RE = re.compile(r"^        stage\('((?:[^'\\]|\\.)*)'\) \{$", re.M)
# A stage's one line: at the steps' level, or inside the withCredentials that binds a login around it.
SH_RE = re.compile(r"^ {16}(?: {4})?sh '(legion-ci (\S+) .*)'$", re.M)


def _jenkinsfiles(rendered: render.Rendered) -> dict[str, str]:
    return {k: v for k, v in rendered.files.items() if k.endswith("Jenkinsfile") and "platform" not in k}


@pytest.mark.parametrize("case", [c for c in CASES if c != "jenkins-platform"])
def test_stages_are_exactly_the_flow_in_order(case: str) -> None:
    for path, text in _jenkinsfiles(render_case(case)).items():
        flow = next((k.flow for k in jobs.JOB_KINDS if path.endswith(f"/{k.jenkinsfile}")), "push")
        titles = STAGE_RE.findall(text)
        commands = SH_RE.findall(text)
        assert titles == [s.title for s in (*STAGES, *ON_DEMAND) if s.name in FLOWS[flow]], path
        assert [c[1] for c in commands] == list(FLOWS[flow]), path
        for line, name in commands:
            assert line == f'legion-ci {name} "$LEGION_MODEL_DIR" --run-id "$LEGION_RUN_ID" --flow {flow}'
        assert len(re.findall(r"^\s+sh ", text, re.M)) == len(FLOWS[flow]), "one sh line per stage, no more"


def test_examples_render_with_every_stage_of_the_graph(tmp_path: Path) -> None:
    specs = [load_spec(ROOT / "examples" / name) for name in ("iris", "diabetes")]
    rendered = render.render_all(specs, render.RenderOptions(scm_url=SCM_URL, repo_root=ROOT))
    iris = rendered.files["iris/Jenkinsfile"]
    assert SH_RE.findall(iris) and [c[1] for c in SH_RE.findall(iris)] == list(FLOWS["push"])
    assert "LEGION_MODEL_DIR = 'examples/iris'" in iris
    xml = rendered.files["jobs/iris/iris-pipeline/config.xml"]
    assert "<scriptPath>examples/iris/Jenkinsfile</scriptPath>" in xml
    for loaded in specs:
        scheduled = loaded.spec.schedule.retrain is not None
        assert (f"{loaded.spec.name}/retrain.Jenkinsfile" in rendered.files) == scheduled, "retrain job iff scheduled"
        deciding = scheduled or loaded.spec.rollout.strategy != "immediate"
        assert (f"{loaded.spec.name}/rollout.Jenkinsfile" in rendered.files) == deciding, "rollout job iff a candidate"


def test_the_rollout_job_runs_evaluate_on_the_spec_schedule(tmp_path: Path) -> None:
    src = shutil.copytree(FIXTURES / "jenkins-no-schedule" / "input", tmp_path / "m")
    spec = yaml.safe_load((src / "legion.yaml").read_text())
    options = render.RenderOptions(scm_url=SCM_URL, repo_root=tmp_path)
    name = spec["name"]
    assert f"{name}/rollout.Jenkinsfile" not in render.render_all([load_spec(src)], options).files
    spec["rollout"] = {"strategy": "canary", "schedule": "H/30 * * * *"}
    (src / "legion.yaml").write_text(yaml.safe_dump(spec))
    rendered = render.render_all([load_spec(src)], options)
    text = rendered.files[f"{name}/rollout.Jenkinsfile"]
    assert [c[1] for c in SH_RE.findall(text)] == ["evaluate"] and "cron('H/30 * * * *')" in text
    assert "junit(testResults: 'evaluate/junit.xml'" in text and "reportDir: 'evaluate'," in text
    root = ET.fromstring(rendered.files[f"jobs/{name}/{name}-rollout/config.xml"].encode())
    assert root.findtext(".//hudson.triggers.TimerTrigger/spec") == "H/30 * * * *"


def test_retrain_job_xml_carries_the_spec_cron() -> None:
    for case in ("jenkins-basic", "jenkins-kubernetes"):
        src = FIXTURES / case / "input"
        cron_spec = load_spec(src).spec.schedule.retrain
        rendered = render_case(case)
        name = load_spec(src).spec.name
        root = ET.fromstring(rendered.files[f"jobs/{name}/{name}-retrain/config.xml"].encode())
        assert root.findtext(".//hudson.triggers.TimerTrigger/spec") == cron_spec
        assert f"cron({render._groovy(cron_spec)})" in rendered.files[f"{name}/retrain.Jenkinsfile"]


def test_every_config_xml_is_well_formed_and_stamped() -> None:
    for case in CASES:
        for item in render_case(case).items:
            ET.fromstring(item.xml.encode("utf-8"))
            assert re.fullmatch(r"[0-9a-f]{16}", item.digest), item.full_name


def test_spec_values_cannot_break_out_of_groovy_strings() -> None:
    text = render_case("jenkins-kubernetes").files["k8s-model/Jenkinsfile"]
    assert "'#ml-alerts'" in text
    assert render._groovy("It's ${x} \\ \n") == "'It\\'s ${x} \\\\ \\n'"
    xml = render_case("jenkins-kubernetes").files["jobs/k8s-model/config.xml"]
    assert "&lt;special&gt; &amp;" in xml


def test_parameters_and_credentials_are_the_same_in_jenkinsfile_and_xml() -> None:
    rendered = render_case("jenkins-basic")
    text = rendered.files["basic/Jenkinsfile"]
    root = ET.fromstring(rendered.files["jobs/basic/basic-pipeline/config.xml"].encode())
    xml_names = [n.text for n in root.iter("name") if n.text and n.text.startswith("LEGION_")]
    assert xml_names == list(jobs.PARAM_NAMES)
    assert re.findall(r"name: '(LEGION_\w+)'", text) == list(jobs.PARAM_NAMES)
    for cred in jobs.credentials_for(load_spec(FIXTURES / "jenkins-basic" / "input").spec):
        assert f"{cred.env} = credentials('{cred.id}')" in text


def test_casc_defines_every_credential_the_templates_use() -> None:
    casc = yaml.safe_load((ROOT / "jenkins" / "casc.yaml").read_text())
    ids = {
        c[kind]["id"]
        for d in casc["credentials"]["system"]["domainCredentials"]
        for c in d["credentials"]
        for kind in c
    }
    wanted = {c.id for c in (*jobs.CREDENTIALS, *jobs.PLATFORM_CREDENTIALS)} | {jobs.IMAGE_REGISTRY.id}
    assert wanted | {jobs.SCM_CREDENTIALS_ID, jobs.JENKINS_API_CREDENTIALS_ID} <= ids
    assert "securityRealm" not in casc["jenkins"], "the realm comes from exactly one casc-<realm>.yaml"
    realms = {
        name: yaml.safe_load((ROOT / "jenkins" / f"casc-{name}.yaml").read_text())["jenkins"]["securityRealm"]
        for name in ("local", "oidc")
    }
    assert set(realms["local"]) == {"local"} and set(realms["oidc"]) == {"oic"}
    for cred in (
        c[kind] for d in casc["credentials"]["system"]["domainCredentials"] for c in d["credentials"] for kind in c
    ):
        for key in ("secret", "password", "secretBytes"):
            if key in cred:
                assert str(cred[key]).startswith("${"), f"{cred['id']}.{key} must come from the environment"


def test_plugins_are_pinned_and_cover_every_step_used() -> None:
    lines = [ln.strip() for ln in (ROOT / "jenkins" / "plugins.txt").read_text().splitlines()]
    pins = dict(ln.split(":", 1) for ln in lines if ln and not ln.startswith("#"))
    assert all(re.fullmatch(r"[0-9][0-9A-Za-z._-]*", v) for v in pins.values()), "every plugin pinned to a version"
    needed = {
        "workflow-aggregator",
        "git",
        "cloudbees-folder",
        "credentials-binding",
        "timestamper",
        "junit",
        "htmlpublisher",
        "mailer",
        "slack",
        "kubernetes",
        "configuration-as-code",
        "job-dsl",
        "oic-auth",
    }
    assert needed <= set(pins)


def test_platform_jenkinsfile_in_the_repo_is_the_rendered_one() -> None:
    rendered = render_case("jenkins-platform")
    committed = (ROOT / render.PLATFORM_SCRIPT).read_text(encoding="utf-8")
    assert committed == rendered.files[f"{jobs.PLATFORM_JOB}/platform.Jenkinsfile"]


def test_duplicate_model_names_are_refused(tmp_path: Path) -> None:
    a = shutil.copytree(FIXTURES / "jenkins-basic" / "input", tmp_path / "a")
    b = shutil.copytree(FIXTURES / "jenkins-basic" / "input", tmp_path / "b")
    with pytest.raises(ConfigError, match="two model folders are named 'basic'"):
        render.render_all([load_spec(a), load_spec(b)], render.RenderOptions(scm_url=SCM_URL, repo_root=tmp_path))


def test_model_outside_the_repo_root_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not inside the repository root"):
        render.render_all(
            [load_spec(FIXTURES / "jenkins-basic" / "input")], render.RenderOptions(scm_url=SCM_URL, repo_root=tmp_path)
        )


def test_bad_cron_is_refused_at_validate_with_the_reason(tmp_path: Path) -> None:
    model = shutil.copytree(FIXTURES / "jenkins-basic" / "input", tmp_path / "m")
    spec = (model / "legion.yaml").read_text().replace('"H H(0-5) * * 1-5"', '"H H(0-25) * * 1-5"')
    (model / "legion.yaml").write_text(spec)
    with pytest.raises(SpecError) as err:
        load_spec(model)
    assert "schedule.retrain: hour field 'H(0-25)': 25 is out of range (expected 0 to 23)" in str(err.value)


def test_cli_render_writes_the_tree_and_nothing_on_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    src = FIXTURES / "jenkins-basic" / "input"
    assert main(["render", str(src), "--out", str(out), "--scm-url", SCM_URL, "--repo-root", str(src)]) == 0
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert written == set(expected_files("jenkins-basic"))
    bad = shutil.copytree(src, tmp_path / "bad")
    (bad / "legion.yaml").write_text((bad / "legion.yaml").read_text().replace('1-5"', '1-9"'))
    out2 = tmp_path / "out2"
    assert main(["render", str(bad), "--out", str(out2)]) == 2
    assert "day-of-week field '1-9': 9 is out of range" in capsys.readouterr().err
    assert not out2.exists()


def test_cli_render_needs_a_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "--out", str(tmp_path / "o")]) == 2
    assert "give at least one MODEL_DIR" in capsys.readouterr().err


# --- what a build binds, and where its LEGION_HOME is (issue 10 item 5, issue 12 item 18) ---------------

ENV_BLOCK_RE = re.compile(r"^    environment \{\n(.*?)^    \}", re.M | re.S)
BINDING_RE = re.compile(r"^ {8}(\w+) = credentials\('([^']+)'\)$", re.M)
LOGIN_RE = re.compile(
    r"withCredentials\(\[usernamePassword\(\s*credentialsId: '([^']+)',\s*usernameVariable: '(\w+)',"
    r"\s*passwordVariable: '(\w+)'\s*\)\]\) \{\s*sh 'legion-ci (\w+) ",
    re.S,
)


def _bindings(text: str) -> dict[str, str]:
    block = ENV_BLOCK_RE.search(text)
    assert block, "no environment block"
    return dict(BINDING_RE.findall(block.group(1)))


def _spec_with(tmp_path: Path, **sections: dict[str, object]) -> Path:
    model = tmp_path / "m"
    shutil.copytree(FIXTURES / "jenkins-basic" / "input", model)
    data = yaml.safe_load((model / "legion.yaml").read_text())
    data.update(sections)
    (model / "legion.yaml").write_text(yaml.safe_dump(data))
    return model


def _render_one(model: Path, **options: object) -> dict[str, str]:
    opts = render.RenderOptions(scm_url=SCM_URL, repo_root=model, **options)  # type: ignore[arg-type]
    return render.render_all([load_spec(model)], opts).files


def test_the_image_registry_login_is_bound_as_the_variables_package_reads() -> None:
    """What Jenkins binds is what the code reads: read from the rendered text, compared with the names
    legion_ci.package reads (not a second hand-written list)."""
    from legion_ci.package import options as package_options

    text = render_case("jenkins-kubernetes").files["k8s-model/Jenkinsfile"]
    logins = LOGIN_RE.findall(text)
    assert logins == [("legion-image-registry", package_options.ENV_USER, package_options.ENV_PASSWORD, "package")]
    assert (package_options.ENV_USER, package_options.ENV_PASSWORD) == (
        "LEGION_REGISTRY_USER",
        "LEGION_REGISTRY_PASSWORD",
    )
    assert "_USR" not in text and "_PSW" not in text and "IMAGE_REGISTRY_AUTH" not in text


def test_every_bound_variable_is_one_legion_ci_or_the_aws_sdk_reads() -> None:
    from legion_ci.core.settings import Settings, env_name

    read = {env_name(f) for f in Settings.model_fields} | {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ENDPOINT_URL",
    }
    for case in CASES:
        for path, text in render_case(case).files.items():
            if path.endswith("Jenkinsfile") and "platform" not in path:
                assert set(_bindings(text)) <= read, (path, set(_bindings(text)) - read)


def test_a_local_model_binds_no_image_registry_credential() -> None:
    text = render_case("jenkins-basic").files["basic/Jenkinsfile"]
    assert "legion-image-registry" not in text and "withCredentials" not in text
    assert load_spec(FIXTURES / "jenkins-basic" / "input").spec.deploy.target == "local"


def test_every_model_binds_the_shared_registry_and_store(tmp_path: Path) -> None:
    files = _render_one(_spec_with(tmp_path))
    for name in ("basic/Jenkinsfile", "basic/retrain.Jenkinsfile"):
        assert _bindings(files[name]) == {
            "LEGION_REGISTRY_URL": "legion-registry-url",
            "LEGION_STORE_URL": "legion-store-url",
            "AWS_ACCESS_KEY_ID": "legion-store-access-key-id",
            "AWS_SECRET_ACCESS_KEY": "legion-store-secret-access-key",
            "LEGION_JWT_SECRET": "legion-jwt-secret",
        }


def test_the_jwt_secret_is_bound_only_when_the_endpoints_check_tokens(tmp_path: Path) -> None:
    files = _render_one(_spec_with(tmp_path, deploy={"auth": False}))
    assert "LEGION_JWT_SECRET" not in _bindings(files["basic/Jenkinsfile"])
    assert "legion-jwt-secret" not in files["basic/Jenkinsfile"]


def test_the_store_endpoint_is_bound_only_when_asked(tmp_path: Path) -> None:
    model = _spec_with(tmp_path)
    assert "AWS_ENDPOINT_URL" not in _bindings(_render_one(model)["basic/Jenkinsfile"])
    bound = _bindings(_render_one(model, store_endpoint=True)["basic/Jenkinsfile"])
    assert bound["AWS_ENDPOINT_URL"] == "legion-store-endpoint-url"


def test_cli_render_store_endpoint_flag(tmp_path: Path) -> None:
    model = _spec_with(tmp_path)
    out = tmp_path / "out"
    assert main(["render", str(model), "--out", str(out), "--scm-url", SCM_URL, "--store-endpoint"]) == 0
    assert "AWS_ENDPOINT_URL = credentials('legion-store-endpoint-url')" in (out / "basic" / "Jenkinsfile").read_text()


def test_legion_home_is_a_cache_outside_the_git_work_tree() -> None:
    """`$WORKSPACE/.legion` made every build's lineage git.dirty: LEGION_HOME is Jenkins' <workspace>@tmp
    sibling, and every report is published from there through dir(), never from the workspace."""
    for case in CASES:
        for path, text in render_case(case).files.items():
            if not path.endswith("Jenkinsfile"):
                continue
            assert '        LEGION_HOME = "${env.WORKSPACE}@tmp/legion"' in text.splitlines(), path
            assert ".legion" not in text, path
            for publish in re.findall(r"^ +(junit|publishHTML|archiveArtifacts)\(", text, re.M):
                assert publish
            dirs = re.findall(r'^ +dir\("([^"]*)"\) \{$', text, re.M)
            assert dirs and all(d.startswith("${env.LEGION_HOME}/") for d in dirs), (path, dirs)


def test_a_build_home_beside_the_workspace_leaves_the_model_clean(tmp_path: Path) -> None:
    from legion_ci.core.lineage import git_info

    workspace = tmp_path / "workspace" / "iris-pipeline"
    shutil.copytree(FIXTURES / "jenkins-basic" / "input", workspace)
    for args in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", "-C", str(workspace), *args], check=True)
    home = Path(f"{workspace}{jobs.BUILD_HOME_BESIDE_WORKSPACE}")
    (home / "runs" / "r1").mkdir(parents=True)
    (home / "runs" / "r1" / "summary.json").write_text("{}")
    assert git_info(workspace)["dirty"] is False
    (workspace / ".legion").mkdir()
    (workspace / ".legion" / "registry.db").write_text("")
    assert git_info(workspace)["dirty"] is True, "the old place, inside the work tree, reads as dirty"


# --- the platform job's free-text parameter reaches a shell and Ansible only once checked ----------------


def _platform_stage_script(stage: str) -> str:
    text = render_case("jenkins-platform").files[f"{jobs.PLATFORM_JOB}/platform.Jenkinsfile"]
    found = re.search(r"stage\('" + re.escape(stage) + r"'\) \{\s*steps \{\s*sh '''\n(.*?)'''", text, re.S)
    assert found, stage
    return found.group(1).replace("\\\\", "\\")  # the Groovy ''' literal's one escape in this block


@pytest.mark.parametrize("stage", ["Plan", "Install or upgrade"])
@pytest.mark.parametrize(
    ("namespace", "ok"),
    [
        ("legion", True),
        ("ml-prod-2", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("", False),
        ("-legion", False),
        ("legion legion_kubeconfig=/tmp/evil", False),
        ("legion\nother", False),
        ("$(touch pwned)", False),
        ("Legion", False),
    ],
)
def test_platform_namespace_parameter_is_checked_before_ansible_reads_it(
    stage: str, namespace: str, ok: bool, tmp_path: Path
) -> None:
    """`-e "legion_namespace=$LEGION_NAMESPACE"` is split by Ansible on spaces: a value that is not a DNS
    label could add extra vars. The stage's own script (read from the rendered text) refuses it first."""
    script = _platform_stage_script(stage)
    check = script[: script.index("ansible-playbook")] + "echo CHECKED\n"
    run = subprocess.run(
        ["sh", "-c", check],
        env={"PATH": "/usr/bin:/bin", "LEGION_NAMESPACE": namespace},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (run.returncode == 0 and run.stdout.strip() == "CHECKED") is ok, (run.returncode, run.stdout, run.stderr)
    assert not (tmp_path / "pwned").exists()
    if not ok:
        assert run.returncode == 2 and "LEGION_NAMESPACE" in run.stderr


def test_the_rollout_job_offers_no_push_flow_parameters() -> None:
    """`legion-ci evaluate` reads none of LEGION_TARGET, LEGION_TRAFFIC_WEIGHT or the skip/force reasons:
    the rollout job does not offer them (the push job still does)."""
    rendered = render_case("jenkins-basic")
    text = rendered.files["basic/rollout.Jenkinsfile"]
    xml = rendered.files["jobs/basic/basic-rollout/config.xml"]
    assert "parameters {" not in text and "ParametersDefinitionProperty" not in xml
    for name in jobs.PARAM_NAMES:
        assert name not in text and name not in xml
    assert "parameters {" in rendered.files["basic/Jenkinsfile"]
