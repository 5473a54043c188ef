"""Where legion-ci's templates, playbooks, roles and charts are, installed or in a checkout.

The top-level folders of the repository (pipelines/, jenkins/jobs/, ansible/, helm/) are their source
of truth. The wheel build (setup.py) copies each of them into the package as legion_ci/_data/<folder>,
so an installed legion-ci finds them through importlib.resources. An editable install (`make dev`)
has no such copy: there the package sits in its checkout and reads the top-level folders directly.
The relative layout is the same in both places (ansible/ finds ../helm/ beside it).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from legion_ci.core.errors import ConfigError

PACKAGE = "legion_ci"
BUNDLE = "_data"  # the package folder the wheel build fills
# Every folder the wheel carries, as a path under the repository root (and under legion_ci/_data/).
# setup.py copies exactly this tuple; tests/unit/test_resources.py holds the two equal.
BUNDLED = ("pipelines", "jenkins/jobs", "ansible", "helm")


def package_dir() -> Path:
    """The folder of the running legion_ci package."""
    found = files(PACKAGE)
    if not isinstance(found, Path):
        raise ConfigError(
            f"legion-ci is installed as {found!r}, not as a folder "
            "(expected an ordinary pip install: its playbooks and charts must be real files)"
        )
    return found


def checkout_root() -> Path | None:
    """The repository that holds the running package (an editable install), or None when installed."""
    root = package_dir().resolve().parent
    if (root / "pyproject.toml").is_file() and (root / "setup.py").is_file():
        return root
    return None


def folder(name: str) -> Path:
    """The folder `name` (one of BUNDLED): the installed package's copy, else the checkout's own."""
    if name not in BUNDLED:
        raise ValueError(f"{name!r} is not a folder legion-ci carries (expected one of {', '.join(BUNDLED)})")
    packaged = package_dir() / BUNDLE / name
    if packaged.is_dir():
        return packaged
    root = checkout_root()
    if root is not None and (root / name).is_dir():
        return root / name
    raise ConfigError(
        f"legion-ci's {name}/ folder is missing: not in {packaged} (where an installed wheel carries it)"
        + (f" nor in the checkout {root}" if root is not None else "")
        + " (expected a complete install: reinstall legion-ci from its wheel, or run it from its source tree)"
    )
