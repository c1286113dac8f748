"""schemathesis against a running gateway: no 5xx, and every answer conforms to /openapi.json."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from connectors.signing import signature_headers
from gateway.http.app import all_routes
from gateway.http.openapi import openapi_document
from tests.gateway.conftest import ADMIN_TOKEN, AUDITOR_TOKEN, SECRETS
from tests.gateway.test_serve import Served

SCHEMA = schemathesis.openapi.from_dict(openapi_document(all_routes()))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


class SignAs(requests.auth.AuthBase):
    """Signs the final request (method, path and query, body) as a connector, as the interface says."""

    def __init__(self, connector: str) -> None:
        self.connector = connector

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        data = body.encode() if isinstance(body, str) else body
        assert isinstance(data, bytes)
        request.headers.update(signature_headers(self.connector, SECRETS[self.connector], request.method or "GET",
                                                 request.path_url, data))
        return request


class Bearer(requests.auth.AuthBase):
    """A bearer token: the admin's for the admin API, the auditor's elsewhere."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        admin = (request.path_url or "").startswith("/v1/admin/")
        request.headers["Authorization"] = f"Bearer {ADMIN_TOKEN if admin else AUDITOR_TOKEN}"
        return request


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = Served(Path(tmp_path_factory.mktemp("fuzz")))
    served.start()
    yield served
    served.kill()


@SCHEMA.parametrize()
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
def test_the_api_conforms_to_its_document(case: Any, gateway: Served) -> None:
    """Generated requests, signed or bearing a token as each operation requires, never get a 5xx
    and every answer matches the documented status codes, content types and schemas."""
    security = case.operation.definition.raw.get("security")
    auth = Bearer() if security and "bearer" in security[0] else SignAs("amr") if security else None
    response = case.call(base_url=gateway.url, auth=auth)
    case.validate_response(response, checks=CHECKS)
