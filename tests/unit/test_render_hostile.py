"""Hostile values through every output language `legion-ci render` writes (issue 11, items 17-18).

Every value that reaches a Jenkinsfile (Groovy), a job config.xml (XML) or the build pod (YAML) is
checked against its grammar when legion.yaml is read, and written through an escaper for the language
it lands in. Here: the spec refuses what is not in the grammar, naming legion.yaml, the field, the
value and what is expected; property tests feed arbitrary and hostile strings through each escaper and
read the output back with a reader of that language (a reference reader of Groovy's string literals and
comments, yaml.safe_load, ElementTree); a model folder whose name holds newlines, quotes, `${}`,
`'''`, backslashes and `]]>` renders to files that read back to that name; and no template variable goes
out without an escaper. tests/integration/test_jenkins_lint.py lints a hostile rendering with
npm-groovy-lint as well.
"""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from legion_ci.core.errors import ConfigError, SpecError
from legion_ci.core.resources import folder
from legion_ci.core.spec import SPEC_FILE, load_spec
from legion_ci.jenkins import jobs, render

ROOT = Path(__file__).resolve().parents[2]
BASIC = ROOT / "tests" / "fixtures" / "jenkins-basic" / "input"

HOSTILE = (
    "'",
    '"',
    "\n",
    "\r\n",
    "${x}",
    "$x",
    "'''",
    '"""',
    "\\",
    "\\'",
    "\\u000a",
    "\\\\u0027",
    "]]>",
    "<x a='1'>&amp;",
    "- a: [b, {c: d}] # e & *f !g | > % @ `",
    "\x00\x01\x1b\x7f",
    "\u0085\u2028\u2029",
    "é 中 😀",
    "*/ /* // \n// end",
)
hostile_text = st.one_of(st.sampled_from(HOSTILE), st.text(), st.lists(st.sampled_from(HOSTILE)).map("".join))


# --- a reference reader of the Groovy that render writes ----------------------------------------------

_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "s": " ", "\\": "\\", "'": "'", '"': '"'}
_SIMPLE_ESCAPES["$"] = "$"


def no_unicode_escape(source: str) -> None:
    """Groovy (like Java) decodes `\\uXXXX` anywhere in the source before it lexes, when the backslash is
    preceded by an even number of backslashes: `// \\u000a` ends a comment. None may be eligible."""
    for found in re.finditer(r"(\\+)u", source):
        assert len(found.group(1)) % 2 == 0, f"an eligible unicode escape at {found.start()}: {source!r}"


def read_groovy_body(body: str, quote: str, multiline: bool = False) -> str:
    """The value of a Groovy string literal's body (between its quotes); fails on anything unescaped."""
    no_unicode_escape(body)
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            if nxt in _SIMPLE_ESCAPES:
                out.append(_SIMPLE_ESCAPES[nxt])
                i += 2
                continue
            octal = re.match(r"[0-3]?[0-7]{1,2}", body[i + 1 :])
            assert octal, f"unknown escape \\{nxt} in {body!r}"
            out.append(chr(int(octal.group(), 8)))
            i += 1 + len(octal.group())
            continue
        assert ch not in quote, f"unescaped {ch!r} at {i} in {body!r}"
        assert multiline or ch not in "\r\n", f"a raw line end in a one-line literal: {body!r}"
        out.append(ch)
        i += 1
    return "".join(out)


def read_groovy_literal(literal: str) -> str:
    assert literal[0] == literal[-1] == "'" and len(literal) >= 2, literal
    return read_groovy_body(literal[1:-1], "'")


def read_comment(text: str) -> str:
    assert "\n" not in text and "\r" not in text and text.isascii() and text.isprintable(), text
    no_unicode_escape(text)
    return text.encode("ascii").decode("unicode_escape")


# --- the escapers, one property per language ---------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(hostile_text)
def test_groovy_literal_reads_back_as_the_value(value: str) -> None:
    assert read_groovy_literal(render._groovy(value)) == value


@settings(max_examples=200, deadline=None)
@given(st.lists(hostile_text, max_size=4))
def test_groovy_list_reads_back_as_the_values(values: list[str]) -> None:
    text = render._groovy_list(values)
    assert text[0] == "[" and text[-1] == "]"
    found = re.findall(r"'(?:[^'\\]|\\.)*'", text[1:-1], re.S)
    assert [read_groovy_literal(f) for f in found] == values
    assert ", ".join(found) == text[1:-1], "nothing between the literals but their separators"


@settings(max_examples=400, deadline=None)
@given(hostile_text)
def test_gstring_text_reads_back_and_interpolates_nothing(value: str) -> None:
    body = render._gstring_text(value)
    assert read_groovy_body(body, '"$') == value
    parts = render.gstring("a/", render.Expr("env.LEGION_RUN_ID"), value)
    assert parts == "a/${env.LEGION_RUN_ID}" + body


def test_only_a_built_gstring_may_stand_between_gstring_quotes() -> None:
    with pytest.raises(TypeError, match="unescaped"):
        render._gstring("${evil}")


@settings(max_examples=400, deadline=None)
@given(hostile_text)
def test_comment_stays_on_its_line_and_reads_back(value: str) -> None:
    assert read_comment(render._comment(value)) == value


@settings(max_examples=300, deadline=None)
@given(hostile_text)
def test_groovy_block_reads_back_as_the_text(value: str) -> None:
    block = render._groovy_block(value)
    assert block.startswith("'''\n") and block.endswith("'''")
    assert read_groovy_body(block[4:-3], "'", multiline=True) == value


@settings(max_examples=300, deadline=None)
@given(hostile_text)
def test_pod_yaml_reads_back_as_the_pod_meant(image: str) -> None:
    """Whatever the image string, the pod is one container of that image, nothing more (no hostNetwork,
    no privileged, no volume), also after the Groovy block that carries it is read back."""
    pod_yaml = render.pod_yaml(image)
    assert yaml.safe_load(pod_yaml) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"labels": {"app.kubernetes.io/managed-by": "legion-ci"}},
        "spec": {"containers": [{"name": "legion", "image": image, "command": ["sleep"], "args": ["infinity"]}]},
    }
    block = render._groovy_block(pod_yaml)
    assert read_groovy_body(block[4:-3], "'", multiline=True) == pod_yaml


def _xml_safe(value: str) -> bool:
    return not any(render._xml_refused(ord(c)) for c in value)


@settings(max_examples=400, deadline=None)
@given(hostile_text)
def test_xml_text_reads_back_as_the_value_or_is_refused(value: str) -> None:
    if not _xml_safe(value):
        with pytest.raises(ConfigError, match="cannot carry"):
            render._xml(value)
        return
    doc = f"<?xml version='1.1' encoding='UTF-8'?>\n<a><b>{render._xml(value)}</b></a>"
    assert ET.fromstring(doc.encode("utf-8")).findtext("b") == value


# --- the grammars legion.yaml is checked against ------------------------------------------------------


def _spec(tmp_path: Path, extra: str) -> Path:
    """The basic fixture model with the sections of `extra` (YAML) put over its own."""
    model = tmp_path / "m"
    shutil.copytree(BASIC, model)
    data = yaml.safe_load((model / SPEC_FILE).read_text(encoding="utf-8"))
    for key, value in yaml.safe_load(extra).items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    (model / SPEC_FILE).write_text(yaml.safe_dump(data), encoding="utf-8")
    return model


INJECTION = "alpine\n      securityContext: {privileged: true}\n  hostNetwork: true"


@pytest.mark.parametrize(
    ("extra", "field", "expected"),
    [
        (f"agent:\n  kubernetes_image: {INJECTION!r}\n".replace("'", '"'), "agent.kubernetes_image", "OCI image"),
        ('agent:\n  kubernetes_image: "alpine:3.19 # x"\n', "agent.kubernetes_image", "OCI image"),
        ('agent:\n  kubernetes_image: "Registry.example.com/UPPER:1"\n', "agent.kubernetes_image", "OCI image"),
        ("agent:\n  kubernetes_image: \"alpine'''\"\n", "agent.kubernetes_image", "OCI image"),
        ('agent:\n  label: "pods\\n// x"\n', "agent.label", "Jenkins label expression"),
        ('agent:\n  label: "pods\') { evil() }"\n', "agent.label", "Jenkins label expression"),
        ('notify:\n  email: ["a@b.com\\nBcc: x@y.z"]\n', "notify.email", "e-mail address"),
        ('notify:\n  slack: "#ch\\" + evil"\n', "notify.slack", "Slack channel"),
        ('deploy:\n  namespace: "legion\\nkind: Secret"\n', "deploy.namespace", "Kubernetes namespace"),
        ('description: "a\\x01b"\n', "description", "control character U+0001"),
    ],
)
def test_spec_refuses_values_outside_their_grammar(tmp_path: Path, extra: str, field: str, expected: str) -> None:
    model = _spec(tmp_path, extra)
    with pytest.raises(SpecError) as err:
        load_spec(model)
    text = str(err.value)
    assert SPEC_FILE in text and f"{field}:" in text and expected in text, text
    assert "(got " in text, "the message quotes the value"


@pytest.mark.parametrize(
    "image",
    [
        "alpine",
        "python:3.11-slim",
        "registry.example.com/legion/agent:1.0",
        "localhost:5000/a/b_c__d-e.f:latest",
        "ghcr.io/org/img@sha256:" + "a" * 64,
        "ghcr.io/org/img:1.2@sha256:" + "0" * 64,
        "[::1]:5000/img:tag",
    ],
)
def test_spec_accepts_image_references(tmp_path: Path, image: str) -> None:
    model = _spec(tmp_path, f'agent:\n  kubernetes_image: "{image}"\n  label: "linux && (pods || k8s)"\n')
    assert load_spec(model).spec.agent.kubernetes_image == image


# --- a whole rendering, with a hostile model folder ---------------------------------------------------

FOLDER_NAMES = (
    "it's ${x} \"\"\" ''' \\ ]]> <b>&amp;\nnew line } pipeline { \\u000a",
    "back\\slash\r\ncrlf\t'tab'",
    "unicode é\u2028中",
)


@pytest.mark.parametrize("name", FOLDER_NAMES)
def test_hostile_model_folder_reads_back_from_every_file(tmp_path: Path, name: str) -> None:
    model = tmp_path / "models" / name
    shutil.copytree(BASIC, model)
    loaded = load_spec(model)
    rendered = render.render_model(
        loaded, render.RenderOptions(scm_url="https://git.example.com/m.git", repo_root=tmp_path)
    )
    rel = f"models/{name}"
    for path, text in rendered.files.items():
        if path.endswith("Jenkinsfile"):
            head, _, rest = text.partition("pipeline {\n")
            lines = head.splitlines()
            assert lines and all(ln.startswith("// ") for ln in lines), f"{path}: header broke out: {head!r}"
            assert f"{rel}/{SPEC_FILE}" in read_comment(lines[0])
            found = re.search(r"^        LEGION_MODEL_DIR = ('(?:[^'\\\n]|\\.)*')$", rest, re.M)
            assert found, path
            assert read_groovy_literal(found.group(1)) == rel
            no_unicode_escape(text)
        else:
            root = ET.fromstring(text.encode("utf-8"))
            if root.tag == "flow-definition":
                script = root.findtext(".//scriptPath") or ""
                assert script in (f"{rel}/{k.jenkinsfile}" for k in jobs.JOB_KINDS), script
            else:
                assert f"{rel}/{SPEC_FILE}" in (root.findtext("description") or "")


def test_a_folder_name_xml_cannot_carry_is_refused_naming_it(tmp_path: Path) -> None:
    model = tmp_path / "bad\x01name"
    shutil.copytree(BASIC, model)
    with pytest.raises(ConfigError, match=r"U\+0001"):
        render.render_model(load_spec(model), render.RenderOptions(scm_url="https://x/m.git", repo_root=tmp_path))


# --- the audit: no template variable goes out without its escaper -------------------------------------

GROOVY_ESCAPERS = ("groovy", "groovy_list", "groovy_block", "gstring_text", "gstring", "comment", "int", "groovy_name")
# Macro calls (their own variables are checked where the macro is written) and `subject`, which the
# notify macro builds from escaped parts with {% set %}.
GROOVY_TRUSTED = re.compile(r"^(m\.\w+\(|notify_steps\(|subject$)")


def _variables(text: str) -> list[str]:
    return [v.strip() for v in re.findall(r"\{\{(.*?)\}\}", text, re.S)]


@pytest.mark.parametrize("template", sorted(p.name for p in folder("pipelines").glob("*.j2")))
def test_every_groovy_template_variable_goes_through_an_escaper(template: str) -> None:
    for var in _variables((folder("pipelines") / template).read_text(encoding="utf-8")):
        last = var.rsplit("|", 1)[-1].strip() if "|" in var else ""
        assert last in GROOVY_ESCAPERS or GROOVY_TRUSTED.match(var), f"{template}: {{{{ {var} }}}} is written raw"


@pytest.mark.parametrize("template", sorted(p.name for p in folder("jenkins/jobs").glob("*.j2")))
def test_every_xml_template_variable_goes_through_the_xml_escaper(template: str) -> None:
    for var in _variables((folder("jenkins/jobs") / template).read_text(encoding="utf-8")):
        assert var.endswith("| xml"), f"{template}: {{{{ {var} }}}} is written without | xml"
