"""legion_ci.core.resources: the folders the wheel carries, as the build (setup.py, MANIFEST.in) and the
checkout see them. The installed side (legion_ci/_data/ in site-packages) is tested for real by
tests/integration/test_wheel_install.py."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from legion_ci.core import resources

ROOT = Path(__file__).resolve().parents[2]


def _setup_py_bundled() -> tuple[str, ...]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "BUNDLED" for t in node.targets):
            value = ast.literal_eval(node.value)
            assert isinstance(value, tuple)
            return value
    raise AssertionError("setup.py has no BUNDLED tuple")


def test_the_build_copies_exactly_the_folders_the_package_reads() -> None:
    assert _setup_py_bundled() == resources.BUNDLED


def test_the_sdist_carries_every_bundled_folder() -> None:
    grafted = re.findall(r"^graft (\S+)$", (ROOT / "MANIFEST.in").read_text(), re.MULTILINE)
    assert sorted(grafted) == sorted(resources.BUNDLED)


def test_from_the_checkout_the_top_level_folders_are_read() -> None:
    assert resources.checkout_root() == ROOT
    for name in resources.BUNDLED:
        assert resources.folder(name) == ROOT / name
    assert (resources.folder("ansible") / "deploy.yml").is_file()
    assert (resources.folder("jenkins/jobs") / "pipeline.xml.j2").is_file()


def test_the_ansible_roles_find_the_charts_beside_them() -> None:
    """ansible/ refers to ../helm/: the bundle keeps the two side by side."""
    defaults = (resources.folder("ansible") / "roles/model_kubernetes/defaults/main.yml").read_text()
    assert "role_path ~ '/../../../helm/legion-model'" in defaults
    role = resources.folder("ansible") / "roles" / "model_kubernetes"
    chart = resources.folder("helm") / "legion-model" / "Chart.yaml"
    assert (role / "../../../helm/legion-model/Chart.yaml").resolve() == chart


def test_a_folder_not_carried_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'docs' is not a folder legion-ci carries \(expected one of pipelines"):
        resources.folder("docs")
