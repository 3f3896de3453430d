"""Schemathesis against the served OpenAPI spec: generated requests (valid and not) never get a 5xx, every
answer has a status code and a body the spec documents, and an operation that declares the bearer scheme
refuses a request without the token."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import ignored_auth, response_schema_conformance, status_code_conformance

from lam_platform.service.app import create_app
from lam_platform.service.auth import parse_tokens
from lam_platform.service.settings import ServiceSettings
from lam_platform.simulation.world import load_world_config

TOKEN = "schema-test-token-0123456789"
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, ignored_auth]


@pytest.fixture(scope="module")
def api_schema(trained_world):
    config = ServiceSettings.from_workdir(
        trained_world, max_customers=20, clock=load_world_config(trained_world).scoring_time, explain_steps=4
    )
    app = create_app(config, parse_tokens([{"name": "fuzz", "token": TOKEN, "scopes": ["score", "call-list"]}], "t"))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_answer_is_documented_and_none_is_a_server_error(api_schema, mode):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/score", "/v1/call-list", "/v1/fairness", "/readyz"}
    for operation in operations:
        if mode == GenerationMode.NEGATIVE and operation.method.upper() != "POST":
            continue  # a GET without parameters has no invalid form to generate

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def conforms(case):
            case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)

        conforms()
