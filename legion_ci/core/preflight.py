"""What `legion-ci validate` checks beyond the spec's schema and the files it names: everything a later stage
would trip over that can be known without training. The Python files the pipeline runs must compile
(train.py, the model's tests, its own locustfile), and a CSV must hold the label column the spec names.
Each problem names the field, the file (and line), the value and what was expected."""

from __future__ import annotations

import csv
import difflib
from pathlib import Path

from legion_ci.core.errors import SpecError
from legion_ci.core.spec import LoadedSpec

MODEL_LOCUSTFILE = "perf/locustfile.py"  # what legion_ci.quality.perf.locustfile runs when the model has one


def _compiles(file: Path, field: str) -> str | None:
    try:
        compile(file.read_bytes(), str(file), "exec")
    except SyntaxError as exc:
        return f"{field}: {file}: not valid Python: {exc.msg} (line {exc.lineno})"
    except (OSError, ValueError) as exc:  # unreadable, or a NUL byte in the source
        return f"{field}: {file}: cannot be read as Python source: {exc}"
    return None


def _csv_problems(loaded: LoadedSpec) -> list[str]:
    train = loaded.spec.train
    file = loaded.model_dir / train.data
    try:
        with file.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return [f"train.data: {train.data!r} cannot be read as a CSV: {exc}"]
    if not header:
        return [f"train.data: {train.data!r} is empty (expected a header row naming the columns, then rows)"]
    columns = [c.strip() for c in header]
    if train.target not in columns:
        close = difflib.get_close_matches(train.target, columns, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return [
            f"train.target: column {train.target!r} is not in {train.data!r}; {hint}"
            f"(columns: {', '.join(columns[:20])}{' ...' if len(columns) > 20 else ''})"
        ]
    if len(columns) < 2:
        return [f"train.data: {train.data!r} has only the label column {train.target!r} (expected features too)"]
    return []


def preflight(loaded: LoadedSpec) -> list[str]:
    """Every problem found, in the spec's order (empty when the model folder is ready to train)."""
    spec, folder = loaded.spec, loaded.model_dir
    problems: list[str] = []
    entry = folder / spec.train.entrypoint
    if entry.is_file() and (p := _compiles(entry, "train.entrypoint")):
        problems.append(p)
    if not spec.train.data.startswith("sklearn:") and (folder / spec.train.data).is_file():
        problems += _csv_problems(loaded)
    tests = folder / spec.gate.tests
    if tests.is_dir() and tests.resolve().is_relative_to(folder.resolve()):
        for file in sorted([*tests.rglob("test_*.py"), *tests.rglob("*_test.py"), *tests.rglob("conftest.py")]):
            if p := _compiles(file, "gate.tests"):
                problems.append(p)
    locustfile = folder / MODEL_LOCUSTFILE
    if spec.perf.enabled and locustfile.is_file() and (p := _compiles(locustfile, "perf (the model's locustfile)")):
        problems.append(p)
    return problems


def check_ready(loaded: LoadedSpec) -> None:
    """Raise SpecError listing every preflight problem of the model folder."""
    problems = preflight(loaded)
    if problems:
        raise SpecError(str(loaded.file), problems)
