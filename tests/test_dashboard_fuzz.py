"""schemathesis against the dashboard's OpenAPI schema, in process (ASGI), with the token:
every operation, generated cases, no server error and no response outside the schema."""

from __future__ import annotations

import pytest
import schemathesis
from fuzz_counts import count, flush
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from sqlmodel import Session

from dashboard import create_app
from dashboard.sample_data import fill
from orchestrator.store.db import make_engine

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CASES_PER_OPERATION = 60


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    """The guarded app over a filled store; its schema is read through the token gate."""
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}"
    engine = make_engine(url)
    with Session(engine, expire_on_commit=False) as s:
        fill(s, repeats=1)
    app = create_app(url, token=TOKEN, engine=engine)
    yield schemathesis.openapi.from_asgi("/api/openapi.json", app, headers=AUTH)
    engine.dispose()
    flush()


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=CASES_PER_OPERATION, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_operation_never_fails_on_the_server(case):
    """Each generated request is answered below 500, with a status and body the schema allows."""
    response = case.call(headers=AUTH)
    count("api_cases")
    count(f"api_status_{response.status_code}")
    count(f"api_operation {case.operation.label}")
    if response.status_code >= 500:
        count("api_5xx")
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                              response_schema_conformance])
