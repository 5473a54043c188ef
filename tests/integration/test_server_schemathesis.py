"""Schemathesis against the real server's /openapi.json: no 5xx, answers match the schema, bad input refused.

Bounded: a few examples per operation and generation mode, so the run stays well under a minute.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Server

MAX_EXAMPLES = 12


def test_openapi_contract(server: Server, auth: dict[str, str]) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode
    from schemathesis.checks import positive_data_acceptance

    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12

    def contract(op: Any, mode: Any, excluded: list[Any]) -> Any:
        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(headers=auth, excluded_checks=excluded)

        return check

    for op in operations:
        # An inference request can fit the JSON schema and still name a shape the model cannot take.
        excluded = [positive_data_acceptance] if op.path.endswith("/infer") else []
        modes = (
            (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            if op.method.upper() == "POST"
            else (GenerationMode.POSITIVE,)
        )
        for mode in modes:
            contract(op, mode, excluded)()
