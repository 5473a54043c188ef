"""legion-ci installed from its wheel, outside the checkout: render, validate, train and a local deploy.

The wheel is built from this tree (legion_ci.package.wheel, which runs `pip wheel`), then installed with
`pip install --no-deps --no-index` into a fresh venv under the test's temporary folder. Installing the
~100 third-party dependencies from scratch would take minutes; the fresh venv gets them from the test's
own venv instead, through a .pth line naming that venv's site-packages (a .pth path line adds a folder to
sys.path without running the .pth files inside it, so the checkout's editable-install hook never loads)
and copies of those distributions' console scripts pointed at the fresh python (ansible-playbook).
legion_ci itself comes only from the wheel: the test proves it is imported from the fresh venv's
site-packages, that its templates, playbooks and charts are read from there, and that nothing of the
checkout is on sys.path. Every command runs with its working directory outside the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from legion_ci.core import registry_schema
from legion_ci.core.resources import BUNDLED
from legion_ci.core.spec import load_spec
from legion_ci.jenkins.render import RenderOptions, render_all
from legion_ci.package.wheel import build_wheel
from tests.registry_fixture import restore_sqlite

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCM_URL = "https://git.example.com/ml/models.git"
RUN_ID = "wheel-install"
# What the fresh venv's python imports and reads, as JSON.
PROBE = """
import json, sys
import legion_ci
from legion_ci.core import resources
print(json.dumps({
    "module": legion_ci.__file__,
    "path": sys.path,
    "checkout": str(resources.checkout_root()),
    "hooks": [m for m in sys.modules if "editable" in m] + [repr(f) for f in sys.meta_path if "ditable" in repr(f)],
    "folders": {n: str(resources.folder(n)) for n in resources.BUNDLED},
    "chart": str(resources.folder("ansible") / "roles/model_kubernetes/../../../helm/legion-model"),
}))
"""


@dataclass
class Installed:
    """A fresh venv holding legion-ci from the wheel, and a work folder outside the checkout."""

    python: Path
    site_packages: Path
    wheel: Path
    work: Path
    env: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        done = subprocess.run(
            [str(self.python.parent / "legion-ci"), *args],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        self.timings[" ".join(args[:1])] = self.timings.get(args[0], 0.0) + time.monotonic() - started
        return done

    def python_says(self, code: str) -> str:
        done = subprocess.run(
            [str(self.python), "-c", code], cwd=self.work, env=self.env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _install(python: Path, wheel: Path) -> None:
    """`pip install --no-deps --no-index WHEEL` into the environment of `python` (which has no pip)."""
    command = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def _processes_naming(text: str) -> list[list[str]]:
    """Command lines of the running processes with an argument that contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = [a.decode(errors="replace") for a in (entry / "cmdline").read_bytes().split(b"\0") if a]
            except OSError:
                continue
            if any(text in a for a in args):
                found.append(args)
    return found


def _console_scripts_to(bin_dir: Path, python: Path) -> None:
    """The test venv's console scripts of the dependencies (not legion-ci's), run by `python`: what pip
    would have written had it installed those distributions into the fresh venv."""
    ours = Path(sys.executable).parent
    for script in ours.iterdir():
        if script.name == "legion-ci" or not script.is_file():
            continue
        head, _, body = script.read_bytes().partition(b"\n")
        if not (head.startswith(b"#!") and head[2:].decode(errors="replace").strip().startswith(str(ours))):
            continue
        target = bin_dir / script.name
        if not target.exists():
            target.write_bytes(b"#!" + str(python).encode() + b"\n" + body)
            target.chmod(0o755)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("wheel-install")
    assert not _inside(base, ROOT), f"{base} must be outside the checkout {ROOT}"
    timings: dict[str, float] = {}

    started = time.monotonic()
    wheel = build_wheel(base / "wheels", root=ROOT)
    timings["build wheel"] = time.monotonic() - started

    started = time.monotonic()
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site_packages = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
    )
    _install(python, wheel)
    (site_packages / "_legion_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _console_scripts_to(venv / "bin", python)
    timings["fresh venv and install"] = time.monotonic() - started

    work = base / "work"
    shutil.copytree(ROOT / "examples" / "iris", work / "iris", ignore=shutil.ignore_patterns("__pycache__"))
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "iris"]):
        subprocess.run(
            ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *command],
            cwd=work,
            check=True,
            timeout=60,
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEGION_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(
        LEGION_HOME=str(base / "home"),
        PATH=f"{venv / 'bin'}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
        HOME=str(base / "user"),
    )
    place = Installed(python, site_packages, wheel, work, env, timings)
    yield place
    place.run("undeploy", "iris", timeout=120)
    print("\nwheel-install timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in place.timings.items()))


def test_the_wheel_carries_every_bundled_folder_byte_for_byte(installed: Installed) -> None:
    tracked = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--", *BUNDLED], capture_output=True, check=True, timeout=60
    ).stdout.decode()
    files = [f for f in tracked.split("\0") if f and (ROOT / f).is_file()]
    assert any(f.startswith("helm/legion-model/") for f in files) and any(f.startswith("ansible/roles/") for f in files)
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        missing = [f for f in files if f"legion_ci/_data/{f}" not in names]
        assert missing == []
        differ = [f for f in files if wheel.read(f"legion_ci/_data/{f}") != (ROOT / f).read_bytes()]
        assert differ == []
    assert not any(n.startswith(("ansible/", "helm/", "pipelines/", "jenkins/")) for n in names)


def test_legion_ci_is_imported_from_the_fresh_venv_and_reads_its_files_there(installed: Installed) -> None:
    report = json.loads(installed.python_says(PROBE))
    site = installed.site_packages.resolve()
    assert Path(report["module"]).resolve() == site / "legion_ci" / "__init__.py"
    assert report["checkout"] == "None"
    for name, folder in report["folders"].items():
        assert Path(folder).resolve() == site / "legion_ci" / "_data" / name
    # the role finds the chart the way ansible/roles/model_kubernetes/defaults/main.yml does
    assert (Path(report["chart"]) / "Chart.yaml").is_file()
    # of the checkout, only the dependencies' site-packages is on the path: it has no legion_ci package (the
    # checkout's install is editable) and its editable-install hook is not loaded
    dependencies = Path(sysconfig.get_paths()["purelib"])
    assert [p for p in report["path"] if p and _inside(Path(p), ROOT)] in ([], [str(dependencies)])
    assert not (dependencies / "legion_ci").exists()
    assert report["hooks"] == []
    version = installed.run("--version")
    assert version.returncode == 0, version.stderr


def test_render_from_the_wheel_gives_the_checkouts_bytes(installed: Installed) -> None:
    out = installed.work / "rendered"
    done = installed.run("render", "iris", "--out", str(out), "--scm-url", SCM_URL, "--platform")
    assert done.returncode == 0, done.stderr
    expected = render_all(
        [load_spec(installed.work / "iris")], RenderOptions(scm_url=SCM_URL, repo_root=installed.work), platform=True
    )
    written = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*") if p.is_file()}
    assert written == expected.files
    assert "iris/Jenkinsfile" in written and "jobs/iris/iris-pipeline/config.xml" in written


def test_validate_train_and_a_local_deploy_from_the_wheel(installed: Installed) -> None:
    valid = installed.run("validate", "iris")
    assert valid.returncode == 0 and "valid" in valid.stdout, valid.stderr

    for stage, extra in (
        ("train", ["iris"]),
        ("gate", []),
        ("perf", ["--skip-perf", "the wheel-install test checks installation, not latency"]),
        ("deploy", []),
        ("smoke", []),
    ):
        done = installed.run(stage, *extra, "--run-id", RUN_ID, "--json")
        assert done.returncode == 0, f"{stage}: {done.stdout}\n{done.stderr}"
        result = json.loads(done.stdout)
        assert result["status"] in ("passed", "skipped"), result
        if stage == "deploy":
            deployed = result

    assert deployed["outputs"]["urls"], deployed
    servers = _processes_naming(installed.env["LEGION_HOME"])  # model servers run artifacts from LEGION_HOME
    assert servers, "no model-server process found"
    for cmdline in servers:
        assert str(installed.python) in cmdline[:2], cmdline  # run by the fresh venv's python


def test_the_installed_package_repacks_itself_into_the_same_wheel(installed: Installed) -> None:
    repacked = Path(
        installed.python_says(
            "from pathlib import Path; from legion_ci.package.wheel import build_wheel; "
            f"print(build_wheel(Path({str(installed.work / 'cache')!r})))"
        )
    )
    with zipfile.ZipFile(installed.wheel) as original, zipfile.ZipFile(repacked) as again:
        before = {n: original.read(n) for n in original.namelist() if not n.endswith(".dist-info/RECORD")}
        after = {n: again.read(n) for n in again.namelist() if not n.endswith(".dist-info/RECORD")}
    assert before.keys() == after.keys()
    assert [n for n in before if before[n] != after[n]] == []
    # and pip installs it, RECORD and all, as the image build does
    venv = installed.work / "repacked-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    _install(venv / "bin" / "python", repacked)
    found = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "from legion_ci.core import resources; print(resources.folder('helm'))"],
        cwd=installed.work,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()).resolve().is_relative_to(venv.resolve())


def test_an_install_missing_its_templates_says_where_it_looked(installed: Installed) -> None:
    pipelines = installed.site_packages / "legion_ci" / "_data" / "pipelines"
    shutil.move(pipelines, pipelines.with_name("pipelines.moved"))
    try:
        done = installed.run("render", "iris", "--out", str(installed.work / "broken"), "--scm-url", SCM_URL)
    finally:
        shutil.move(pipelines.with_name("pipelines.moved"), pipelines)
    assert done.returncode != 0
    assert f"legion-ci's pipelines/ folder is missing: not in {pipelines}" in done.stderr
    assert "reinstall legion-ci" in done.stderr
    assert not (installed.work / "broken").exists()


def test_the_registrys_migrations_run_from_the_wheel(installed: Installed) -> None:
    """Alembic finds the migration scripts inside the installed package and upgrades a registry that
    legion-ci wrote before it had migrations (tests/fixtures/registry-v0)."""
    scripts = installed.python_says("from legion_ci.core import registry_schema; print(registry_schema.SCRIPTS)")
    assert Path(scripts).is_relative_to(installed.site_packages), scripts
    url = restore_sqlite(installed.work / "legacy-registry.db")
    before = installed.run("db", "current", "--registry-url", url)
    assert before.returncode == 0 and "written before legion-ci had migrations" in before.stdout, before.stderr
    upgraded = installed.run("db", "upgrade", "--registry-url", url)
    assert upgraded.returncode == 0 and f"to {registry_schema.HEAD}" in upgraded.stdout, upgraded.stderr
    listed = installed.run("models", "--json", "--registry-url", url)
    assert listed.returncode == 0, listed.stderr
    assert [m["model"] for m in json.loads(listed.stdout)] == ["diabetes", "iris"]
