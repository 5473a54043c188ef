"""Every Jenkinsfile legion-ci renders or ships passes npm-groovy-lint 16 (CodeNarc, --noserver).

One lint run covers all of them (it takes tens of seconds): both examples, every fixture case (so every
template and the odd specs: Kubernetes agent, no schedule, Slack and e-mail), the committed platform
and seed Jenkinsfiles and the project's own root Jenkinsfile. A deliberately broken file rides along
to prove the linter really parses what it is given.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from legion_ci.core.spec import load_spec
from legion_ci.jenkins import render

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
BROKEN = "broken.Jenkinsfile"
HOSTILE_FOLDER = "it's ${x} \"\"\" ''' \\ ]]>\n}\npipeline { \\u000a\r\t\u2028 é"


def _collect(out: Path) -> list[Path]:
    files: dict[str, str] = {}
    examples = [load_spec(ROOT / "examples" / n) for n in ("iris", "diabetes") if (ROOT / "examples" / n).is_dir()]
    rendered = render.render_all(
        examples, render.RenderOptions(scm_url="https://git.example.com/m.git", repo_root=ROOT), platform=True
    )
    files.update({f"examples/{k}": v for k, v in rendered.files.items() if k.endswith("Jenkinsfile")})
    for case in sorted(p for p in FIXTURES.glob("jenkins-*") if (p / "input" / "legion.yaml").is_file()):
        options = render.RenderOptions(scm_url="https://git.example.com/m.git", repo_root=case / "input")
        part = render.render_all([load_spec(case / "input")], options)
        files.update({f"{case.name}/{k}": v for k, v in part.files.items() if k.endswith("Jenkinsfile")})
    # A model folder whose name holds what Groovy must escape (issue 11, item 18): header comment, strings.
    hostile_repo = out.parent / "hostile-repo"
    hostile = hostile_repo / "models" / HOSTILE_FOLDER
    shutil.copytree(FIXTURES / "jenkins-kubernetes" / "input", hostile, dirs_exist_ok=True)
    part = render.render_all(
        [load_spec(hostile)], render.RenderOptions(scm_url="https://git.example.com/m.git", repo_root=hostile_repo)
    )
    files.update({f"hostile/{k}": v for k, v in part.files.items() if k.endswith("Jenkinsfile")})
    for shipped in ("Jenkinsfile", "jenkins/seed.Jenkinsfile", "jenkins/platform.Jenkinsfile"):
        files[f"repo/{shipped}"] = (ROOT / shipped).read_text(encoding="utf-8")
    files[BROKEN] = "pipeline {\n    agent any\n    stages {\n        stage('x') {\n            steps { sh 'true'\n"
    paths = []
    for rel, text in sorted(files.items()):
        # npm-groovy-lint lints files named Jenkinsfile or *.Jenkinsfile; keep every path unique.
        path = out / rel.replace("/", "__")
        if not path.name.endswith("Jenkinsfile"):
            path = path.with_name(path.name + ".Jenkinsfile")
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def lint(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    exe = shutil.which("npm-groovy-lint")
    if exe is None:
        pytest.fail(
            "npm-groovy-lint is not installed: run `bash scripts/provision/jenkins.sh` (npm install -g "
            "npm-groovy-lint@16)"
        )
    out = tmp_path_factory.mktemp("lint")
    paths = _collect(out)
    proc = subprocess.run(
        [exe, "--noserver", "--output", "json", "--failon", "none", *map(str, paths)],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    start = proc.stdout.find("{")
    assert start >= 0, f"npm-groovy-lint printed no JSON (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    report: dict[str, Any] = json.loads(proc.stdout[start:])
    report["paths"] = [str(p) for p in paths]
    return report


def _problems(report: dict[str, Any], path: str, severities: tuple[str, ...]) -> list[str]:
    entry = report["files"].get(path, {"errors": []})
    return [
        f"{e.get('line')}: {e['severity']} {e['rule']}: {e['msg']}"
        for e in entry["errors"]
        if e["severity"] in severities
    ]


def test_every_file_was_linted(lint: dict[str, Any]) -> None:
    assert lint["summary"]["totalFilesLinted"] == len(lint["paths"])
    names = " ".join(lint["paths"])
    for expected in (
        "examples__iris__Jenkinsfile",
        "examples__iris__retrain.Jenkinsfile",
        "platform.Jenkinsfile",
        "jenkins-kubernetes__k8s-model__retrain.Jenkinsfile",
        "jenkins-no-schedule",
        "repo__Jenkinsfile",
        "hostile__k8s-model__Jenkinsfile",
    ):
        assert expected in names


def _hostile(path: str) -> bool:
    return Path(path).name.startswith("hostile__")


def test_rendered_and_shipped_jenkinsfiles_have_no_error_and_no_warning(lint: dict[str, Any]) -> None:
    bad = {
        p: _problems(lint, p, ("error", "warning")) for p in lint["paths"] if not p.endswith(BROKEN) and not _hostile(p)
    }
    assert not {p: v for p, v in bad.items() if v}


# Style rules a hostile folder name trips by being data: a long header line, and `${x}` kept as text in a
# single-quoted string (which is the point). Anything else, and every error, would be a real finding.
HOSTILE_STYLE = {"LineLength", "GStringExpressionWithinString"}


def test_a_hostile_model_folder_renders_jenkinsfiles_that_parse(lint: dict[str, Any]) -> None:
    hostile = [p for p in lint["paths"] if _hostile(p)]
    assert len(hostile) == 3, hostile  # push, retrain, rollout
    for path in hostile:
        entry = lint["files"].get(path, {"errors": []})
        found = [
            e
            for e in entry["errors"]
            if e["severity"] == "error" or (e["severity"] == "warning" and e["rule"] not in HOSTILE_STYLE)
        ]
        assert not found, f"{path}: {found}"


def test_the_linter_catches_a_broken_jenkinsfile(lint: dict[str, Any]) -> None:
    broken = next(p for p in lint["paths"] if p.endswith(BROKEN))
    assert _problems(lint, broken, ("error",)), "npm-groovy-lint must report the unclosed braces"
