"""The one build step pyproject.toml cannot declare: copy the repository's top-level pipelines/,
jenkins/jobs/, ansible/ and helm/ into the wheel as legion_ci/_data/<folder> (package data that
legion_ci.core.resources finds through importlib.resources). The folders stay the source of truth;
nothing is copied into the source tree. An editable install (`pip install -e .`) skips the copy: it
reads the folders from the checkout. The metadata is all in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLE = "legion_ci/_data"
# Keep equal to legion_ci.core.resources.BUNDLED (tests/unit/test_resources.py checks it).
BUNDLED = ("pipelines", "jenkins/jobs", "ansible", "helm")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".ansible")  # caches, not sources


class BuildPyWithBundle(build_py):
    """build_py, then the bundled folders copied under the built package."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        for name in BUNDLED:
            source = ROOT / name
            if not source.is_dir():
                raise SystemExit(f"setup.py: {source} is missing (expected legion-ci's repository folder {name}/)")
            target = Path(self.build_lib) / BUNDLE / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, ignore=SKIP)


setup(cmdclass={"build_py": BuildPyWithBundle})
