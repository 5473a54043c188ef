"""docs/settings.md is what the Settings class generates; the README links it."""

from __future__ import annotations

from pathlib import Path

from legion_ci.core.settings import Settings, env_name
from legion_ci.core.settings_doc import DOC, render

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_page_is_what_the_class_generates() -> None:
    committed = (ROOT / DOC).read_text(encoding="utf-8")
    assert committed == render(), "docs/settings.md is stale: run `python -m legion_ci.core.settings_doc`"


def test_every_setting_has_a_line_with_its_doc_and_the_readme_links_the_page() -> None:
    page = render()
    for field, info in Settings.model_fields.items():
        assert info.description, f"{field} has no description"
        assert f"| `{env_name(field)}` |" in page
    assert "(docs/settings.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
