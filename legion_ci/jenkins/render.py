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
import markupsafe
import yaml

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
    store_endpoint: bool = False  # bind AWS_ENDPOINT_URL too: the store is S3-compatible but not AWS S3

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


# Groovy escapes of the characters a literal cannot hold as they are. Other control characters are
# written as 3-digit octal escapes. A backslash is always doubled, so a `\\u` in a value can never become
# one of the Unicode escapes Groovy's reader decodes before it lexes (`\\u000a` would end a line).
_GROOVY_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _groovy_escape(text: str, quote: str) -> str:
    out = []
    for ch in text:
        if ch in _GROOVY_ESCAPES:
            out.append(_GROOVY_ESCAPES[ch])
        elif ch in quote:
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return "".join(out)


def _groovy(value: object) -> str:
    """A single-quoted Groovy string literal on one line: no interpolation, every special character escaped."""
    return "'" + _groovy_escape(str(value), "'") + "'"


def _groovy_list(values: Iterable[object]) -> str:
    return "[" + ", ".join(_groovy(v) for v in values) + "]"


def _groovy_block(text: str) -> str:
    """A triple-single-quoted Groovy string (multi-line, no interpolation): every quote and backslash escaped."""
    escaped = "\n".join(_groovy_escape(line, "'") for line in text.split("\n"))
    return f"'''\n{escaped}'''"


def _gstring_text(value: object) -> str:
    """Text placed inside a double-quoted Groovy GString: `$`, quotes and backslashes escaped, one line."""
    return _groovy_escape(str(value), '"$')


class Expr(str):
    """Groovy code for a `${...}` inside a GString: only ever a constant written in this module."""


class GString(str):
    """The body of a double-quoted GString built by `gstring()`: literal parts escaped, `${...}` parts code."""


def gstring(*parts: str) -> GString:
    """Join literal text (escaped) and `Expr` parts (interpolated as `${expr}`) into a GString body."""
    return GString("".join(f"${{{p}}}" if isinstance(p, Expr) else _gstring_text(p) for p in parts))


def _gstring(value: object) -> str:
    """The `gstring` filter: only a body `gstring()` built may stand between the quotes of a GString."""
    if not isinstance(value, GString):
        raise TypeError(f"{value!r} reached a GString unescaped (expected a value built by render.gstring())")
    return str(value)


_GROOVY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _groovy_name(value: object) -> str:
    """An environment variable name written as a Groovy identifier: checked against the identifier grammar."""
    text = str(value)
    if not _GROOVY_NAME.fullmatch(text):
        raise ValueError(f"{text!r} is not an environment variable name (expected letters, digits and _)")
    return text


def _comment(value: object) -> str:
    """Text for a `//` comment: printable ASCII as is, a backslash doubled, everything else escaped as
    Python's unicode_escape writes it (\\n, \\xNN, \\UNNNNNNNN; never \\u), so nothing ends the line."""
    out = []
    for ch in str(value):
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif ch in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


def _xml_refused(code: int) -> bool:
    """Characters XML 1.0 cannot carry even as a reference (Jenkins reads config.xml as XML 1.1, which
    refuses NUL and needs the other C0 controls as references: refusing them keeps both readers equal)."""
    return (code < 0x20 and code not in (0x09, 0x0A, 0x0D)) or 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF)


def _xml(value: object) -> markupsafe.Markup:
    """XML character data or attribute text: markup escaped, and every character an XML 1.0 or 1.1 reader
    would rewrite (carriage return, C1 controls, NEL and LINE SEPARATOR, which 1.1 reads as line ends)
    written as a character reference, so the text reads back exactly."""
    text = str(value)
    for ch in text:
        if _xml_refused(ord(ch)):
            raise ConfigError(
                f"{text[:80]!r} holds the character U+{ord(ch):04X}, which a Jenkins config.xml cannot carry "
                "(expected printable text)"
            )
    out = []
    for ch in str(markupsafe.escape(text)):
        code = ord(ch)
        out.append(f"&#{code};" if code == 0x0D or 0x7F <= code <= 0x9F or code == 0x2028 else ch)
    return markupsafe.Markup("".join(out))


def pod_yaml(image: str) -> str:
    """The Kubernetes pod a build runs in: one `legion` container from the spec's image, written by a
    YAML serializer (the image is also checked against the image-reference grammar in core/spec.py)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"labels": {"app.kubernetes.io/managed-by": "legion-ci"}},
        "spec": {"containers": [{"name": "legion", "image": image, "command": ["sleep"], "args": ["infinity"]}]},
    }
    return str(yaml.safe_dump(pod, sort_keys=False, default_flow_style=False, allow_unicode=False, width=1 << 16))


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(resources.folder(name)) for name in TEMPLATE_FOLDERS]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=lambda name: bool(name and name.endswith(".xml.j2")),
    )
    env.filters.update(
        groovy=_groovy,
        groovy_list=_groovy_list,
        groovy_block=_groovy_block,
        gstring_text=_gstring_text,
        gstring=_gstring,
        groovy_name=_groovy_name,
        comment=_comment,
        xml=_xml,
        rstrip=str.rstrip,
    )
    env.globals.update(pod_yaml=pod_yaml, home=jobs.BUILD_HOME_BESIDE_WORKSPACE)
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


def _run_dir(*more: str) -> GString:
    """The run folder in the build's LEGION_HOME (outside the workspace: steps reach it through `dir`)."""
    return gstring(Expr("env.LEGION_HOME"), "/runs/", Expr("env.LEGION_RUN_ID"), *more)


def _reports(stages: Iterable[Stage]) -> dict[str, Any]:
    """How Jenkins publishes the files the flow's stages list in `Stage.reports` (JUnit XML, HTML pages):
    paths relative to the run folder, read inside `dir(<run folder>)` at the end of every build, since
    LEGION_HOME is not in the workspace (and a stage's own post block would nest too deep to read)."""
    junit: list[str] = []
    html: list[dict[str, str]] = []
    for st in stages:
        for report in st.reports:
            folder, _, file = report.rpartition("/")
            if report.endswith(".xml"):
                junit.append(report)
            elif report.endswith((".html", ".htm")):
                html.append({"dir": folder or ".", "file": file, "name": f"{st.title}: {file}"})
    return {"junit": ",".join(junit), "html": html}


def _run_id(model: str, kind: jobs.JobKind) -> dict[str, Any]:
    base = (f"{jobs.job_name(model, kind)}-", Expr("env.GIT_COMMIT"))
    if kind.flow == "rollout":
        return {
            "expression": gstring(*base, "-", Expr("env.BUILD_NUMBER")),
            "comment": "One run per evaluation: each build decides on the evidence gathered until then.",
        }
    if kind.trigger == "cron":
        return {
            "expression": gstring(*base, "-", Expr("new Date().format('yyyyMMdd')")),
            "comment": "One retrain run per commit and day: 'Restart from Stage' the same day finds it again.",
        }
    return {
        "expression": gstring(*base),
        "comment": "One run per commit: 'Restart from Stage' (a new build number) and rebuilds find the same run.",
    }


def _stamp(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return text.replace(DIGEST_PLACEHOLDER, digest)


def _description(text: str) -> str:
    return f"{text}\n{MANAGED_NOTE} [legion-ci-digest: {DIGEST_PLACEHOLDER}]"


def kind_parameters(params: tuple[jobs.Param, ...], kind: jobs.JobKind) -> tuple[jobs.Param, ...]:
    """The parameters one job offers: the rollout job none (`legion-ci evaluate` reads none of the push flow's
    target, traffic weight or skip/force reasons), the others all of the model's."""
    return () if kind.flow == "rollout" else params


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
            {
                "name": st.name,
                "title": st.title,
                "command": jobs.stage_command(st, kind.flow),
                "login": jobs.login_for(spec, st.name),
            }
            for st in jobs.flow_stages(kind.flow)
        ]
        script_path = f"{model_path}/{kind.jenkinsfile}" if model_path != "." else kind.jenkinsfile
        cron = jobs.cron_of(spec, kind)
        kind_params = kind_parameters(params, kind)
        out.files[f"{spec.name}/{kind.jenkinsfile}"] = env.get_template(kind.template).render(
            source=source,
            spec=spec,
            flow=kind.flow,
            stages=stages,
            params=kind_params,
            model_path=model_path,
            run_id=_run_id(spec.name, kind),
            credentials=jobs.credentials_for(spec, options.store_endpoint),
            cron=cron,
            run_dir=_run_dir(),
            reports=_reports(jobs.flow_stages(kind.flow)),
            timeout_minutes=TIMEOUT_MINUTES,
        )
        xml = env.get_template("pipeline.xml.j2").render(
            description=_description(
                f"Model {spec.name}, flow {kind.flow}: {' -> '.join(str(s['name']) for s in stages)}."
            ),
            params=kind_params,
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
