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
