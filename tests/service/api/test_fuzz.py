"""Schemathesis against the app's own OpenAPI schema, with a valid owner key: no 5xx, and every
response as the schema documents it. A short, seeded run on every CI (``bench/fuzz.py`` runs a
longer one)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# No 5xx, and every answer documented: status, media type and body. Not "schema-valid requests
# are accepted": a valid request for a task that does not exist is rightly a 404.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

EXAMPLES = int(__import__("os").environ.get("TASKREC_FUZZ_EXAMPLES", "6"))


def fuzz(app, headers: dict, examples: int, seed: int = 0) -> dict[str, str]:
    """Per operation, the first failure found (empty when every case passed)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            check()
        except (Exception, BaseExceptionGroup) as error:  # a failed check: its first line
            failures[operation.label] = _summary(error)
    return failures


def _summary(error: BaseException) -> str:
    """A failure group's distinct failures, each on one line."""
    text = str(error)
    lines = [
        line.strip() for line in text.splitlines() if line.strip().startswith(("- ", "Received"))
    ]
    return " | ".join(lines) or text.strip().splitlines()[0][:300]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"], indirect=True)
def test_the_api_answers_as_documented(client, keys):
    failures = fuzz(client.app, keys.alice, EXAMPLES)
    assert failures == {}, "\n".join(f"{op}: {why}" for op, why in failures.items())
