"""docs/settings.md, generated from the Settings class: `python -m legion_ci.core.settings_doc [--check]`.

The second table lists the LEGION_* variables that other programs read (Jenkins configuration as code,
the Jenkinsfiles' own shell steps, scripts/): legion-ci never reads them, but they share the prefix, so a
reader looking for one finds it here too. A unit test fails when the committed page differs from
`render()` or when a LEGION_* name in the repository is declared in neither place.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from legion_ci.core.settings import SECTIONS, Settings, env_name

DOC = Path("docs") / "settings.md"

# (variable, who reads it, what it is)
EXTERNAL: tuple[tuple[str, str, str], ...] = (
    ("LEGION_RUN_ID", "rendered Jenkinsfiles", "the run id every stage of one build shares (`--run-id`)"),
    ("LEGION_NAMESPACE", "platform Jenkins job", "Kubernetes namespace the platform playbook deploys to"),
    ("LEGION_ADMIN_USER", "jenkins/casc-local.yaml", "the local Jenkins admin user"),
    ("LEGION_ADMIN_PASSWORD", "jenkins/casc-local.yaml", "the local Jenkins admin password"),
    ("LEGION_AGENT_NAMESPACE", "jenkins/casc.yaml", "namespace of the Kubernetes build agents"),
    ("LEGION_AGENT_IMAGE", "jenkins/casc.yaml", "image of the Kubernetes build agents"),
    ("LEGION_JENKINS_URL", "jenkins/casc.yaml", "Jenkins' public URL"),
    ("LEGION_JENKINS_INTERNAL_URL", "jenkins/casc.yaml", "Jenkins' URL as agents reach it"),
    ("LEGION_IMAGE_REGISTRY_USER", "jenkins/casc.yaml", "image registry login stored as a Jenkins credential"),
    ("LEGION_IMAGE_REGISTRY_PASSWORD", "jenkins/casc.yaml", "its password"),
    ("LEGION_KUBECONFIG_FILE", "jenkins/casc.yaml", "kubeconfig stored as a Jenkins credential"),
    ("LEGION_STORE_ACCESS_KEY_ID", "jenkins/casc.yaml", "artifact store access key, bound as AWS_ACCESS_KEY_ID"),
    ("LEGION_STORE_SECRET_ACCESS_KEY", "jenkins/casc.yaml", "its secret key, bound as AWS_SECRET_ACCESS_KEY"),
    ("LEGION_STORE_ENDPOINT_URL", "jenkins/casc.yaml", "S3-compatible store endpoint, bound as AWS_ENDPOINT_URL"),
    ("LEGION_GIT_USER", "jenkins/casc.yaml", "git login stored as a Jenkins credential"),
    ("LEGION_GIT_TOKEN", "jenkins/casc.yaml", "its token"),
    ("LEGION_SEED_USER", "jenkins/casc.yaml", "the user `legion-ci jenkins sync` logs in as"),
    ("LEGION_SEED_TOKEN", "jenkins/casc.yaml", "its API token"),
    ("LEGION_SMTP_HOST", "jenkins/casc.yaml", "mail server for build notifications"),
    ("LEGION_SLACK_TEAM", "jenkins/casc.yaml", "Slack workspace for build notifications"),
    ("LEGION_SLACK_TOKEN", "jenkins/casc.yaml", "Slack token for build notifications"),
    ("LEGION_OIDC_ISSUER", "jenkins/casc-oidc.yaml", "OIDC provider of Jenkins' login"),
    ("LEGION_OIDC_CLIENT_ID", "jenkins/casc-oidc.yaml", "Jenkins' OIDC client id"),
    ("LEGION_OIDC_CLIENT_SECRET", "jenkins/casc-oidc.yaml", "Jenkins' OIDC client secret"),
    ("LEGION_OIDC_ESCAPE_USER", "jenkins/casc-oidc.yaml", "break-glass login when the OIDC provider is down"),
    ("LEGION_OIDC_ESCAPE_SECRET", "jenkins/casc-oidc.yaml", "its password"),
    ("LEGION_REGISTRY_ADDR", "scripts/services.sh", "address of the local Docker registry the tests start"),
    ("LEGION_UPDATE_FIXTURES", "tests", "1: fixture-pair tests rewrite their expected files"),
    ("LEGION_LOG_LEVEL", "nothing", "only an `extraEnv` example in the charts' ci/ test values"),
)


def _default(field: str, value: Any) -> str:
    if field == "home":
        return "`~/.legion`"
    if field == "registry_url":
        return "SQLite in `$LEGION_HOME`"
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`on`" if value else "`off`"
    if isinstance(value, SecretStr):
        return "(secret)"
    return f"`{value}`"


def render() -> str:
    """The page, Markdown, as the Settings class declares it."""
    lines = [
        "# Settings",
        "",
        "<!-- Generated from legion_ci/core/settings.py by `python -m legion_ci.core.settings_doc`; "
        "edit the class, not this page. -->",
        "",
        "Every LEGION_* environment variable legion-ci reads, declared once in `legion_ci/core/settings.py`.",
        "Precedence: default < environment < command line (`--home`, `--registry-url`, `--target`, ...).",
        "A process reads them once, at its start; a bad value stops it with exit status 2 and a message",
        "naming the variable, its value and what was expected, e.g.",
        "`error: LEGION_TRAFFIC_WEIGHT='150' is not valid (expected a whole number from 1 to 100)`.",
        "An empty variable counts as unset. Booleans take `on`/`off` (also `true`/`false`, `1`/`0`, `yes`/`no`).",
        "",
    ]
    for section, title in SECTIONS.items():
        lines += [f"## {title}", "", "| variable | accepts | default | meaning |", "|---|---|---|---|"]
        for field, info in Settings.model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            if extra.get("section") != section:
                continue
            meaning = str(info.description).replace("|", "\\|")
            accepts = str(extra.get("expected", "")).replace("|", "\\|")
            lines.append(f"| `{env_name(field)}` | {accepts} | {_default(field, info.default)} | {meaning} |")
        lines.append("")
    lines += [
        "## Read by other programs, not by legion-ci",
        "",
        "| variable | read by | meaning |",
        "|---|---|---|",
        *(f"| `{name}` | {reader} | {meaning} |" for name, reader, meaning in EXTERNAL),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Write docs/settings.md (run from the repository root); with --check, only say whether it is stale."""
    text = render()
    if "--check" in argv:
        current = DOC.read_text(encoding="utf-8") if DOC.is_file() else ""
        if current != text:
            print(f"{DOC} is stale: run `python -m legion_ci.core.settings_doc`", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
