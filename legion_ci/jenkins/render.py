"""`legion-ci render`: fill the Jinja templates in pipelines/ and jenkins/jobs/ for each model.

Output is deterministic (same input, same bytes): no clock, no absolute paths unless the SCM URL is
one. Each job's config.xml carries a digest of itself in its description, which `jenkins sync`
compares to decide whether a job changed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jinja2

from legion_ci.core import resources
from legion_ci.core.errors import ConfigError
from legion_ci.core.settings import Settings
from legion_ci.core.spec import SPEC_FILE, LoadedSpec
from legion_ci.jenkins import jobs
from legion_ci.pipeline.graph import Stage

TEMPLATE_FOLDERS = ("pipelines", "jenkins/jobs")  # searched in this order, from legion_ci.core.resources
DIGEST_PLACEHOLDER = "@@LEGION_DIGEST@@"
DIGEST_RE = re.compile(r"legion-ci-digest: ([0-9a-f]{16})")
MANAGED_NOTE = "Managed by legion-ci: edits made here are overwritten by `legion-ci jenkins sync`."
PLATFORM_SCRIPT = "jenkins/platform.Jenkinsfile"
TIMEOUT_MINUTES = 120


@dataclass(frozen=True)
class RenderOptions:
    """Where the jobs fetch their Jenkinsfiles from. Precedence: default < environment < command line."""

    scm_url: str | None = None
    scm_branch: str = "main"
    scm_credentials_id: str = jobs.SCM_CREDENTIALS_ID
    repo_root: Path | None = None  # the git work tree the model lives in; default: found from the model folder

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> RenderOptions:
        """LEGION_SCM_URL, LEGION_SCM_BRANCH, LEGION_SCM_CREDENTIALS_ID, then `overrides` (None: not given)."""
        values: dict[str, Any] = {
            "scm_url": settings.scm_url,
            "scm_branch": settings.scm_branch,
            "scm_credentials_id": settings.scm_credentials_id,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass(frozen=True)
class JobConfig:
    """One Jenkins item: a folder or a pipeline job, with its config.xml."""

    full_name: str
    kind: Literal["folder", "job"]
    xml: str

    @property
    def digest(self) -> str:
        found = DIGEST_RE.search(self.xml)
        return found.group(1) if found else ""


@dataclass
class Rendered:
    """Everything rendered for a set of models: files (relative path -> text) and Jenkins items in order."""

    files: dict[str, str] = field(default_factory=dict)
    items: list[JobConfig] = field(default_factory=list)

    def add_item(self, item: JobConfig) -> None:
        self.items.append(item)
        self.files[f"jobs/{item.full_name}/config.xml"] = item.xml


def _groovy(value: object) -> str:
    """A single-quoted Groovy string literal: no interpolation, every special character escaped."""
    text = str(value)
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


def _groovy_list(values: Iterable[object]) -> str:
    return "[" + ", ".join(_groovy(v) for v in values) + "]"


def _groovy_block(text: str) -> str:
    """A triple-single-quoted Groovy string (multi-line, no interpolation)."""
    escaped = text.replace("\\", "\\\\").replace("'''", "\\'\\'\\'")
    return f"'''\n{escaped}'''"


def pod_yaml(image: str) -> str:
    """The Kubernetes pod a build runs in: one `legion` container from the spec's image."""
    return (
        "apiVersion: v1\n"
        "kind: Pod\n"
        "metadata:\n"
        "  labels:\n"
        "    app.kubernetes.io/managed-by: legion-ci\n"
        "spec:\n"
        "  containers:\n"
        "    - name: legion\n"
        f"      image: {image}\n"
        "      command: ['sleep']\n"
        "      args: ['infinity']\n"
    )


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(resources.folder(name)) for name in TEMPLATE_FOLDERS]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=lambda name: bool(name and name.endswith(".xml.j2")),
    )
    env.filters.update(groovy=_groovy, groovy_list=_groovy_list, groovy_block=_groovy_block, rstrip=str.rstrip)
    env.globals.update(pod_yaml=pod_yaml, home=jobs.LEGION_HOME_IN_WORKSPACE)
    return env


def _repo_root(model_dir: Path, given: Path | None) -> Path:
    if given is not None:
        return given.resolve()
    for folder in (model_dir, *model_dir.parents):
        if (folder / ".git").exists():
            return folder
    return model_dir


def _model_path(model_dir: Path, repo_root: Path) -> str:
    try:
        rel = model_dir.resolve().relative_to(repo_root)
    except ValueError:
        raise ConfigError(
            f"model folder {str(model_dir)!r} is not inside the repository root {str(repo_root)!r} "
            "(expected --repo-root to be a parent of every MODEL_DIR)"
        ) from None
    return rel.as_posix() or "."


def _scm_url(options: RenderOptions, repo_root: Path) -> str:
    if options.scm_url:
        return options.scm_url
    try:
        out = subprocess.run(
            ["git", "-C", str(repo_root), "remote", "get-url", "origin"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        out = None
    if out is not None and out.returncode == 0 and out.stdout.strip():
        return out.stdout.strip()
    return repo_root.as_uri()


def _run_dir() -> str:
    return f"{jobs.LEGION_HOME_IN_WORKSPACE}/runs/${{env.LEGION_RUN_ID}}"


def _reports(st: Stage) -> list[dict[str, str]]:
    """How Jenkins publishes each file a stage lists in `Stage.reports`: JUnit XML or an HTML page."""
    out = []
    for report in st.reports:
        path = f"{_run_dir()}/{report}"
        folder, _, file = path.rpartition("/")
        if report.endswith(".xml"):
            out.append({"kind": "junit", "path": path})
        elif report.endswith((".html", ".htm")):
            out.append({"kind": "html", "path": path, "dir": folder, "file": file, "name": f"{st.title}: {file}"})
    return out


def _run_id(model: str, kind: jobs.JobKind) -> dict[str, str]:
    base = f"{jobs.job_name(model, kind)}-${{env.GIT_COMMIT}}"
    if kind.trigger == "cron":
        return {
            "expression": base + "-${new Date().format('yyyyMMdd')}",
            "comment": "One retrain run per commit and day: 'Restart from Stage' the same day finds it again.",
        }
    return {
        "expression": base,
        "comment": "One run per commit: 'Restart from Stage' (a new build number) and rebuilds find the same run.",
    }


def _stamp(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return text.replace(DIGEST_PLACEHOLDER, digest)


def _description(text: str) -> str:
    return f"{text}\n{MANAGED_NOTE} [legion-ci-digest: {DIGEST_PLACEHOLDER}]"


def render_model(loaded: LoadedSpec, options: RenderOptions, env: jinja2.Environment | None = None) -> Rendered:
    """The Jenkinsfiles and job config.xml of one model."""
    env = env or environment()
    spec = loaded.spec
    repo_root = _repo_root(loaded.model_dir, options.repo_root)
    model_path = _model_path(loaded.model_dir, repo_root)
    source = f"{model_path}/{SPEC_FILE}" if model_path != "." else SPEC_FILE
    scm = {
        "url": _scm_url(options, repo_root),
        "branch": options.scm_branch,
        "credentials_id": options.scm_credentials_id,
    }
    params = jobs.parameters(spec)
    out = Rendered()
    folder = jobs.folder_name(spec.name)
    out.add_item(
        JobConfig(
            folder,
            "folder",
            _stamp(
                env.get_template("folder.xml.j2").render(
                    description=_description(
                        f"Model {spec.name}: {spec.description or 'no description'} (from {source})"
                    ),
                )
            ),
        )
    )
    for kind in jobs.kinds_for(spec):
        stages: list[dict[str, Any]] = [
            {"name": st.name, "title": st.title, "command": jobs.stage_command(st, kind.flow), "reports": _reports(st)}
            for st in jobs.flow_stages(kind.flow)
        ]
        script_path = f"{model_path}/{kind.jenkinsfile}" if model_path != "." else kind.jenkinsfile
        cron = spec.schedule.retrain if kind.trigger == "cron" else None
        out.files[f"{spec.name}/{kind.jenkinsfile}"] = env.get_template(kind.template).render(
            source=source,
            spec=spec,
            flow=kind.flow,
            stages=stages,
            params=params,
            model_path=model_path,
            run_id=_run_id(spec.name, kind),
            credentials=jobs.CREDENTIALS,
            cron=cron,
            run_dir=_run_dir(),
            timeout_minutes=TIMEOUT_MINUTES,
        )
        xml = env.get_template("pipeline.xml.j2").render(
            description=_description(
                f"Model {spec.name}, flow {kind.flow}: {' -> '.join(str(s['name']) for s in stages)}."
            ),
            params=params,
            scm=scm,
            script_path=script_path,
            trigger=kind.trigger,
            cron=cron,
        )
        out.add_item(JobConfig(jobs.full_name(spec.name, kind), "job", _stamp(xml)))
    return out


def render_platform(options: RenderOptions, repo_root: Path, env: jinja2.Environment | None = None) -> Rendered:
    """The platform job: installs or upgrades the legion platform through Ansible and Helm."""
    env = env or environment()
    out = Rendered()
    params = jobs.platform_parameters()
    out.files[f"{jobs.PLATFORM_JOB}/platform.Jenkinsfile"] = env.get_template("platform.Jenkinsfile.j2").render(
        params=params,
        credentials=jobs.PLATFORM_CREDENTIALS,
        timeout_minutes=TIMEOUT_MINUTES,
    )
    scm = {
        "url": _scm_url(options, repo_root),
        "branch": options.scm_branch,
        "credentials_id": options.scm_credentials_id,
    }
    xml = env.get_template("pipeline.xml.j2").render(
        description=_description("The legion platform: management API and router, installed by Ansible and Helm."),
        params=params,
        scm=scm,
        script_path=PLATFORM_SCRIPT,
        trigger="manual",
        cron=None,
    )
    out.add_item(JobConfig(jobs.PLATFORM_JOB, "job", _stamp(xml)))
    return out


def render_all(specs: list[LoadedSpec], options: RenderOptions, platform: bool = False) -> Rendered:
    """Render every model (names must be unique) and, if asked, the platform job."""
    env = environment()
    seen: dict[str, Path] = {}
    total = Rendered()
    for loaded in specs:
        name = loaded.spec.name
        if name in seen:
            raise ConfigError(
                f"two model folders are named {name!r}: {str(seen[name])!r} and {str(loaded.model_dir)!r} "
                "(expected unique names: each model gets its own Jenkins folder)"
            )
        if name == jobs.PLATFORM_JOB:
            raise ConfigError(f"model name {name!r} is reserved for the platform job (expected another name)")
        seen[name] = loaded.model_dir
        part = render_model(loaded, options, env)
        total.files.update(part.files)
        total.items.extend(part.items)
    if platform:
        root = options.repo_root or (_repo_root(specs[0].model_dir, None) if specs else Path.cwd())
        part = render_platform(options, root, env)
        total.files.update(part.files)
        total.items.extend(part.items)
    return total


def write_tree(rendered: Rendered, out_dir: Path) -> list[Path]:
    """Write every file under `out_dir` all at once: into a temporary folder, then moved in place."""
    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {str(out_dir)!r} is a file (expected a folder)")
    staging = Path(tempfile.mkdtemp(prefix=".legion-render-", dir=out_dir.parent))
    written: list[Path] = []
    try:
        for rel, text in sorted(rendered.files.items()):
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="\n")
        out_dir.mkdir(exist_ok=True)
        for rel in sorted(rendered.files):
            target = out_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / rel, target)
            written.append(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written
