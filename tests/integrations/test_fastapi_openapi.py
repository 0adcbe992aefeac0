"""The generated OpenAPI schema validates and documents every route completely."""

from __future__ import annotations

from typing import Any

from openapi_spec_validator import validate

from runkon import FlowEngine, InMemoryStore
from runkon.integrations.fastapi import create_app

from ._support import AUTH, WORKFLOWS

ERROR_REF = "#/components/schemas/ErrorOut"


def schema() -> dict[str, Any]:
    app = create_app(FlowEngine(InMemoryStore()), AUTH, workflows=WORKFLOWS)
    return app.openapi()


def test_the_schema_validates() -> None:
    validate(schema())


def test_every_api_route_is_documented_with_its_errors_and_security() -> None:
    spec = schema()
    operations = {
        (method.upper(), path): operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    }
    assert sorted(operations) == [
        ("GET", "/api/gates"),
        ("GET", "/api/runs"),
        ("GET", "/api/runs/{run_id}"),
        ("GET", "/api/runs/{run_id}/events"),
        ("GET", "/api/runs/{run_id}/steps/{step}/logs"),
        ("POST", "/api/runs"),
        ("POST", "/api/runs/{run_id}/cancel"),
        ("POST", "/api/runs/{run_id}/gates/{gate}/approve"),
        ("POST", "/api/runs/{run_id}/gates/{gate}/feedback"),
        ("POST", "/api/runs/{run_id}/gates/{gate}/reject"),
    ]  # the inbox's HTML routes stay out of the API schema
    for (method, path), operation in operations.items():
        responses = operation["responses"]
        for status in ("401", "403", "422"):
            content = responses[status]["content"]["application/json"]["schema"]
            assert content == {"$ref": ERROR_REF}, (method, path, status)
        if "{run_id}" in path:
            assert responses["404"]["content"]["application/json"]["schema"]["$ref"] == ERROR_REF
        if path.endswith(("/approve", "/reject", "/feedback")):
            assert responses["409"]["content"]["application/json"]["schema"]["$ref"] == ERROR_REF
        success = next(code for code in responses if code.startswith("2"))
        assert responses[success]["content"], (method, path)
        assert {"HTTPBearer": []} in operation["security"]
        assert operation["summary"]

    events = operations[("GET", "/api/runs/{run_id}/events")]
    assert "text/event-stream" in events["responses"]["200"]["content"]
    assert {p["name"] for p in events["parameters"]} >= {"run_id", "after", "Last-Event-ID"}
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "HTTPValidationError" not in spec["components"]["schemas"]
