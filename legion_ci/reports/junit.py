"""JUnit XML for Jenkins' `junit` step: one testcase per check; a failure carries the reason."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from legion_ci.quality.checks import Check
from legion_ci.reports.files import write_text_atomic
from legion_ci.reports.model import ReportHead, counts

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text: str) -> str:
    """Text without the characters XML 1.0 forbids (a test's ANSI colours, stray control bytes)."""
    return _NOT_XML.sub("", text)


def junit_xml(head: ReportHead, checks: list[Check], error: str | None = None) -> str:
    """A <testsuites> document with one <testsuite> for the stage; `error` (the stage itself broke) adds an
    <error> testcase. A forced gate keeps its failures (Jenkins marks the build unstable) and says it was forced."""
    n = counts(checks)
    errors = 1 if error else 0
    seconds = sum(c.seconds or 0.0 for c in checks)
    suites = ET.Element(
        "testsuites",
        name=f"legion-ci {head.stage} {head.label}",
        tests=str(n["total"] + errors),
        failures=str(n["failed"]),
        errors=str(errors),
        skipped=str(n["skipped"]),
        time=f"{seconds:.3f}",
    )
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"{head.model}.{head.stage}",
        tests=str(n["total"] + errors),
        failures=str(n["failed"]),
        errors=str(errors),
        skipped=str(n["skipped"]),
        time=f"{seconds:.3f}",
        timestamp=head.generated_at[:19],
    )
    props = ET.SubElement(suite, "properties")
    for key, value in (
        ("model", head.model),
        ("version", head.version),
        ("artifact_id", head.artifact_id),
        ("run_id", head.run_id),
        ("status", head.status),
        ("forced_reason", head.forced_reason),
    ):
        if value:
            ET.SubElement(props, "property", name=key, value=str(value))
    for check in checks:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"legion.{head.model}.{head.stage}.{check.kind}",
            name=_clean(check.name),
            time=f"{check.seconds or 0.0:.3f}",
        )
        if check.skipped:  # JUnit has no "halted": a skipped testcase whose message starts with the word
            word = f"{check.verdict}: " if check.verdict != "skipped" else ""
            ET.SubElement(case, "skipped", message=_clean(word + check.message))
        elif not check.passed:
            failure = ET.SubElement(case, "failure", message=_clean(check.message), type=check.kind)
            failure.text = _clean(check.message + (f"\n\n{check.detail}" if check.detail else ""))
        else:
            ET.SubElement(case, "system-out").text = _clean(check.message)
    if not checks and not error:  # a skipped stage still shows in Jenkins, with why
        case = ET.SubElement(
            suite, "testcase", classname=f"legion.{head.model}.{head.stage}", name=head.stage, time="0.000"
        )
        ET.SubElement(case, "skipped", message=_clean(head.headline))
        for node in (suites, suite):
            node.set("tests", "1")
            node.set("skipped", "1")
    if error:
        case = ET.SubElement(
            suite, "testcase", classname=f"legion.{head.model}.{head.stage}", name=head.stage, time="0.000"
        )
        ET.SubElement(case, "error", message=_clean(error), type="error").text = _clean(error)
    out = f"{head.title}: {head.status.upper()}: {head.headline}"
    if head.forced_reason:
        out += f"\nFORCED by a person, reason: {head.forced_reason}"
    ET.SubElement(suite, "system-out").text = _clean(out)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def write_junit(path: Path, head: ReportHead, checks: list[Check], error: str | None = None) -> Path:
    return write_text_atomic(path, junit_xml(head, checks, error))
