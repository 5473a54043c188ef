"""Render the image's Dockerfile from legion_ci/templates/Dockerfile.j2."""

from __future__ import annotations

from dataclasses import dataclass, field

from jinja2 import Environment, PackageLoader, StrictUndefined

TEMPLATE = "Dockerfile.j2"


@dataclass(frozen=True)
class DockerfileInputs:
    """Everything the template reads; nothing else reaches the Dockerfile."""

    name: str
    version: str
    artifact_id: str
    base_image: str
    wheel: str  # file name of the legion-ci wheel under wheels/ in the context
    labels: dict[str, str] = field(default_factory=dict)
    ca_bundle: bool = False  # the context holds build/ca.pem for pip in the deps stage
    pip_conf: bool = False  # the context holds build/pip.conf for pip in the deps stage


def dockerfile_string(value: object) -> str:
    """A double-quoted Dockerfile word that LABEL reads back verbatim: backslash, quote and `$`
    (variable expansion) escaped, line breaks turned into spaces."""
    text = " ".join(str(value).splitlines())
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("legion_ci", "templates"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )  # a Dockerfile, not HTML
    env.filters["dockerfile_string"] = dockerfile_string
    return env


def render(inputs: DockerfileInputs) -> str:
    """The Dockerfile: one stage, or two when pip needs build-only settings that must stay out of the image."""
    build_only = inputs.ca_bundle or inputs.pip_conf
    return _environment().get_template(TEMPLATE).render(**inputs.__dict__, build_only=build_only)
