"""Request bodies against an input schema: accepted forms, and a 4xx naming the problem for each bad one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from legion_ci.core.manifest import Feature
from legion_ci.serving.validation import InputError, Validator, parse_json

FEATURES = [Feature(name=n, dtype="float64") for n in ("a", "b", "c")]
MIXED = [
    Feature(name="x", dtype="float64"),
    Feature(name="n", dtype="int64"),
    Feature(name="flag", dtype="bool"),
    Feature(name="city", dtype="string"),
]


@pytest.fixture
def v() -> Validator:
    return Validator(FEATURES, max_rows=3)


def test_instances_give_a_float_matrix(v: Validator) -> None:
    rows = v.invoke({"instances": [[1, 2.5, 3], [4, 5, 6]]})
    assert rows.array is not None and rows.array.dtype == np.float64
    assert rows.array.tolist() == [[1.0, 2.5, 3.0], [4.0, 5.0, 6.0]]
    assert rows.proba is False


def test_columns_data_reorders_to_the_schema(v: Validator) -> None:
    rows = v.invoke({"columns": ["c", "a", "b"], "data": [[3, 1, 2]], "return_probabilities": True})
    assert rows.rows == [[1, 2, 3]] and rows.proba is True


def test_list_of_objects_and_mixed_instances(v: Validator) -> None:
    assert v.invoke([{"a": 1, "b": 2, "c": 3}]).rows == [[1, 2, 3]]
    assert v.invoke({"instances": [{"c": 3, "b": 2, "a": 1}, [4, 5, 6]]}).rows == [[1, 2, 3], [4, 5, 6]]


def test_mixed_dtypes_are_checked_per_feature() -> None:
    v = Validator(MIXED, max_rows=10)
    rows = v.invoke({"instances": [[1.5, 3, True, "Paris"], [2, 4.0, False, "Oslo"]]})
    assert rows.array is None and rows.rows[0] == [1.5, 3, True, "Paris"]
    with pytest.raises(InputError, match=r"instances\[0\]\[1\] \(feature 'n'\): expected an integer, got number 3.5"):
        v.invoke({"instances": [[1.5, 3.5, True, "Paris"]]})
    with pytest.raises(InputError, match=r"feature 'flag'\): expected true or false, got number 1"):
        v.invoke({"instances": [[1.5, 3, 1, "Paris"]]})
    with pytest.raises(InputError, match=r"feature 'city'\): expected a string, got number 7"):
        v.invoke({"instances": [[1.5, 3, True, 7]]})


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"instances": [[1, 2]]}, 422, r"instances\[0\]: has 2 values, expected 3 features \(a, b, c\)"),
        ({"instances": [[1, 2, 3, 4]]}, 422, r"has 4 values, expected 3 features"),
        (
            {"instances": [[1, "2", 3]]},
            422,
            r"instances\[0\]\[1\] \(feature 'b'\): expected a finite number, "
            r"got string \"2\"",
        ),
        ({"instances": [[1, True, 3]]}, 422, r"feature 'b'\): expected a finite number, got boolean true"),
        ({"instances": [[1, None, 3]]}, 422, r"feature 'b'\): expected a finite number, got null"),
        ({"instances": [[1, [2], 3]]}, 422, r"got array"),
        ({"instances": [{"a": 1, "b": 2}]}, 422, r"instances\[0\]: missing feature 'c'"),
        ({"instances": [{"a": 1, "b": 2, "c": 3, "d": 4}]}, 422, r"unknown feature 'd' \(expected: a, b, c\)"),
        ({"instances": []}, 422, r"instances: no rows"),
        ({"instances": [[1, 2, 3]] * 4}, 413, r"4 rows, over the limit of 3 rows"),
        ({"instances": "abc"}, 422, r"instances: expected an array of rows, got string"),
        ({"instances": [5]}, 422, r"instances\[0\]: expected an array of 3 values or an object, got number"),
        ({"instance": [[1, 2, 3]]}, 422, r"unknown field 'instance'"),
        ({}, 422, r"body has no rows"),
        ("text", 422, r"body is a JSON string"),
        ({"columns": ["a", "b"], "data": [[1, 2]]}, 422, r"columns: missing feature 'c'"),
        ({"columns": ["a", "b", "z"], "data": [[1, 2, 3]]}, 422, r"columns: unknown feature 'z'"),
        ({"columns": ["a", "a", "b"], "data": [[1, 2, 3]]}, 422, r"feature 'a' appears twice"),
        ({"columns": ["c", "b", "a"], "data": [[1, 2]]}, 422, r"data\[0\]: has 2 values"),
        ({"instances": [[1, 2, 3]], "data": []}, 422, r"not both"),
        ({"instances": [[1, 2, 3]], "return_probabilities": "yes"}, 422, r"return_probabilities: expected true"),
    ],
)
def test_bad_bodies_name_the_problem(v: Validator, payload: object, status: int, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        v.invoke(payload)
    assert info.value.status == status


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"", 400, "request body is empty"),
        (b"   ", 400, "request body is empty"),
        (b"{not json", 400, "request body is not valid JSON"),
        (b'{"instances": [[NaN, 1, 2]]}', 400, "NaN or Infinity"),
        (b'{"instances": [[Infinity, 1, 2]]}', 400, "NaN or Infinity"),
        (b'{"instances": [[1e400, 1, 2]]}', 400, "not valid JSON: number is infinity"),
        (b"\xff\xfe", 400, "not valid JSON"),
        (b"[" + b"1," * 600 + b"1]", 413, "over the limit of 1024 bytes"),
    ],
)
def test_bad_json(body: bytes, status: int, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        parse_json(body, 1024)
    assert info.value.status == status


def test_null_is_nan_only_when_the_schema_allows_it() -> None:
    v = Validator(FEATURES, max_rows=3, allow_nan=True)
    rows = v.invoke({"instances": [[1, None, 3]]})
    assert rows.array is not None and np.isnan(rows.array[0, 1])


def test_messages_are_json_safe_and_short(v: Validator) -> None:
    with pytest.raises(InputError) as info:
        v.invoke({"instances": [[1, "x" * 500, 3]]})
    assert len(info.value.message) < 200
    json.dumps({"error": info.value.message})
