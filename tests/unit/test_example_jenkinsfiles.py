"""The Jenkinsfiles committed in the examples (what their Jenkins jobs read from git) are what
`legion-ci render` makes today; re-render with `legion-ci render examples/iris examples/diabetes --out DIR`."""

from __future__ import annotations

from pathlib import Path

import pytest

from legion_ci.cli import main
from tests.conftest import EXAMPLES


@pytest.mark.parametrize("model", ["iris", "diabetes"])
def test_committed_jenkinsfiles_are_current(model: str, tmp_path: Path) -> None:
    assert main(["render", str(EXAMPLES / model), "--out", str(tmp_path)]) == 0
    rendered = sorted((tmp_path / model).glob("*Jenkinsfile"))
    assert rendered
    for file in rendered:
        committed = EXAMPLES / model / file.name
        assert committed.read_text() == file.read_text(), f"{committed} is stale: re-render it"
