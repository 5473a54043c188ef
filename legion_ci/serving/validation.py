"""Request bodies checked against the artifact's input schema; every problem is a 4xx naming what is wrong."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from legion_ci.core.errors import LegionError, preview

if TYPE_CHECKING:
    from legion_ci.core.manifest import Feature

NUMERIC = {"float64": "f", "float32": "f", "float": "f", "int64": "i", "int32": "i", "int": "i", "bool": "b"}
INVOKE_KEYS = ("instances", "columns", "data", "return_probabilities")
FORMS = '{"instances": [[...], ...]}, {"columns": [...], "data": [[...], ...]} or [{"feature": value, ...}, ...]'


class InputError(LegionError):
    """A request the server refuses; `status` is the HTTP status (always 4xx)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


def _show(value: Any) -> str:
    if isinstance(value, (list, dict)):
        return preview(value, 37)  # caller data: never dumped whole, never recursed into without a bound
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_json(body: bytes, max_bytes: int) -> Any:
    """Parse a request body; empty, oversized, non-UTF-8 and non-JSON bodies (NaN, Infinity) are refused."""
    if len(body) > max_bytes:
        raise InputError(f"request body is {len(body)} bytes, over the limit of {max_bytes} bytes", 413)
    if not body.strip():
        raise InputError(f"request body is empty (expected JSON: {FORMS})", 400)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if _has_non_finite(body):
            raise InputError(
                "request body holds NaN or Infinity, which JSON does not allow and this model does not accept "
                "(send finite numbers)",
                400,
            ) from None
        raise InputError(f"request body is not valid JSON: {exc}", 400) from None


def _has_non_finite(body: bytes) -> bool:
    found = []

    def constant(name: str) -> float:
        found.append(name)
        return 0.0

    try:
        json.loads(body, parse_constant=constant)
    except (ValueError, RecursionError):
        return bool(found)
    return bool(found)


@dataclass(frozen=True)
class Rows:
    """Validated rows in schema order; `array` is set when every feature is numeric."""

    rows: list[list[Any]]
    array: np.ndarray | None
    proba: bool

    @property
    def matrix(self) -> np.ndarray:
        """The float64 matrix (only numeric schemas have one; the predictor's tier guarantees that)."""
        if self.array is None:
            raise InputError("this model's features are not all numeric; it takes rows, not a matrix")
        return self.array


class Validator:
    """Checks rows against the schema's features (name, dtype) and the row limit."""

    def __init__(self, features: list[Feature], max_rows: int, allow_nan: bool = False) -> None:
        self.names = [f.name for f in features]
        self.kinds = [NUMERIC.get(f.dtype, "s") for f in features]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.width = len(self.names)
        self.max_rows = max_rows
        self.allow_nan = allow_nan
        self.numeric = all(k in "fib" for k in self.kinds)
        self.only_numbers = all(k in "fi" for k in self.kinds) and not allow_nan

    # -- body forms -------------------------------------------------------------------------------
    def invoke(self, payload: Any, proba: bool = False) -> Rows:
        """The rows of an invoke body in any of the three accepted forms."""
        if isinstance(payload, list):
            return self.check(payload, "body", proba)
        if not isinstance(payload, dict):
            raise InputError(f"body is a JSON {json_type(payload)}; expected {FORMS}")
        unknown = [k for k in payload if k not in INVOKE_KEYS]
        if unknown:
            raise InputError(f"body: unknown field {preview(unknown[0])} (expected {', '.join(INVOKE_KEYS)})")
        flag = payload.get("return_probabilities", False)
        if not isinstance(flag, bool):
            raise InputError(f"return_probabilities: expected true or false, got {json_type(flag)} {_show(flag)}")
        proba = proba or flag
        if "instances" in payload:
            if "columns" in payload or "data" in payload:
                raise InputError('body: give either "instances" or "columns" with "data", not both')
            return self.check(payload["instances"], "instances", proba)
        if "data" in payload or "columns" in payload:
            return self.split(payload.get("columns"), payload.get("data"), proba)
        raise InputError(f"body has no rows; expected {FORMS}")

    def split(self, columns: Any, data: Any, proba: bool) -> Rows:
        """The pandas 'split' form: columns name the order of the values in each row of data."""
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise InputError(f"columns: expected an array of feature names ({', '.join(self.names)})")
        if not isinstance(data, list):
            raise InputError(f"data: expected an array of rows, got {json_type(data)}")
        seen: set[str] = set()
        for c in columns:
            if c in seen:
                raise InputError(f"columns: feature {preview(c)} appears twice")
            if c not in self.index:
                raise InputError(f"columns: unknown feature {preview(c)} (expected: {', '.join(self.names)})")
            seen.add(c)
        missing = [n for n in self.names if n not in seen]
        if missing:
            raise InputError(f"columns: missing feature {missing[0]!r} (expected: {', '.join(self.names)})")
        if columns == self.names:
            return self.check(data, "data", proba)
        order = [columns.index(n) for n in self.names]
        self._limit(data, "data")
        for i, row in enumerate(data):
            if not isinstance(row, list) or len(row) != self.width:
                self._bad_row(row, f"data[{i}]")
        return self.check([[row[k] for k in order] for row in data], "data", proba)

    # -- rows ---------------------------------------------------------------------------------------
    def _limit(self, rows: Any, where: str) -> None:
        if not isinstance(rows, list):
            raise InputError(f"{where}: expected an array of rows, got {json_type(rows)}")
        if not rows:
            raise InputError(f"{where}: no rows (send at least one)")
        if len(rows) > self.max_rows:
            raise InputError(f"{where}: {len(rows)} rows, over the limit of {self.max_rows} rows per request", 413)

    def check(self, rows: Any, where: str, proba: bool = False) -> Rows:
        """Check each row (an array in schema order or an object keyed by feature name)."""
        self._limit(rows, where)
        width, kinds = self.width, self.kinds
        out = rows
        for i, row in enumerate(rows):
            if type(row) is dict:
                if out is rows:
                    out = list(rows)
                out[i] = row = self._from_object(row, f"{where}[{i}]")
            elif type(row) is not list or len(row) != width:
                self._bad_row(row, f"{where}[{i}]")
            if self.only_numbers:
                for v in row:
                    t = type(v)
                    if t is not float and t is not int:
                        self._bad_rows_at(row, i, where)
            else:
                for j, v in enumerate(row):
                    if not self._ok(kinds[j], v):
                        self._bad_value(v, j, f"{where}[{i}][{j}]")
        if self.only_numbers and self.kinds.count("i"):
            for i, row in enumerate(out):
                for j, k in enumerate(kinds):
                    if k == "i" and type(row[j]) is float and not row[j].is_integer():
                        self._bad_value(row[j], j, f"{where}[{i}][{j}]")
        array = None
        if self.numeric:
            try:
                array = np.array(out, dtype=np.float64)
            except (OverflowError, ValueError) as exc:
                raise InputError(f"{where}: values cannot be read as numbers: {exc}") from None
        return Rows(out, array, proba)

    def _ok(self, kind: str, v: Any) -> bool:
        t = type(v)
        if v is None:
            return self.allow_nan and kind == "f"
        if kind == "f":
            return t is float or t is int
        if kind == "i":
            return t is int or (t is float and v.is_integer())
        if kind == "b":
            return t is bool
        return t is str

    def _from_object(self, row: dict[str, Any], where: str) -> list[Any]:
        for key in row:
            if key not in self.index:
                raise InputError(f"{where}: unknown feature {preview(key)} (expected: {', '.join(self.names)})")
        try:
            return [row[n] for n in self.names]
        except KeyError as exc:
            raise InputError(f"{where}: missing feature {exc.args[0]!r}") from None

    def _bad_row(self, row: Any, where: str) -> None:
        if isinstance(row, list):
            raise InputError(
                f"{where}: has {len(row)} values, expected {self.width} features ({', '.join(self.names)})"
            )
        raise InputError(f"{where}: expected an array of {self.width} values or an object, got {json_type(row)}")

    def _bad_rows_at(self, row: list[Any], i: int, where: str) -> None:
        for j, v in enumerate(row):
            if not self._ok(self.kinds[j], v):
                self._bad_value(v, j, f"{where}[{i}][{j}]")

    def _bad_value(self, v: Any, j: int, where: str) -> None:
        kind = self.kinds[j]
        expected = {
            "f": "a finite number" + (" or null" if self.allow_nan else ""),
            "i": "an integer",
            "b": "true or false",
            "s": "a string",
        }[kind]
        got = "null" if v is None else f"{json_type(v)} {_show(v)}"
        raise InputError(f"{where} (feature {self.names[j]!r}): expected {expected}, got {got}")
