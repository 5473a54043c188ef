"""The label rule and its OpenAPI schema agree: what the schema allows, the feedback endpoint accepts."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from legion_ci.feedback.labels import LabelError, Target

CLASSIFIER = Target.of("classification", [0, 1, 2], "species", "model iris")
REGRESSOR = Target.of("regression", None, "progression", "model diabetes")
UNKNOWN = Target.of(None, None)


@pytest.mark.parametrize(
    ("target", "value"),
    [
        (CLASSIFIER, 1),
        (CLASSIFIER, [0, 2]),
        (REGRESSOR, 151.5),
        (REGRESSOR, [1, 2.5]),
        (UNKNOWN, "setosa"),
        (UNKNOWN, [True, False]),
    ],
)
def test_a_label_the_schema_allows_is_accepted(target: Target, value: Any) -> None:
    jsonschema.validate(value, target.json_schema())
    target.check_all(value, None)


@pytest.mark.parametrize(
    ("target", "value"),
    [
        (CLASSIFIER, None),
        (CLASSIFIER, "class_7"),
        (CLASSIFIER, [1, 7]),
        (REGRESSOR, "high"),
        (REGRESSOR, None),
        (UNKNOWN, None),
        (UNKNOWN, {"a": 1}),
    ],
)
def test_a_label_the_schema_refuses_is_refused(target: Target, value: Any) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(value, target.json_schema())
    with pytest.raises(LabelError):
        target.check_all(value, None)


@pytest.mark.parametrize("value", [1e151, -1e200, 10**400, float("inf"), float("nan")])
def test_a_regression_label_beyond_the_bound_is_refused_by_the_rule_and_the_schema(value: float) -> None:
    with pytest.raises(LabelError, match="between -1e\\+150 and 1e\\+150"):
        REGRESSOR.check(value)
    if value == value and abs(value) != float("inf"):  # JSON has no NaN or infinity
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(value, REGRESSOR.json_schema())
    REGRESSOR.check(1e150)
    jsonschema.validate(1e150, REGRESSOR.json_schema())
