"""The OpenAPI document is generated from the code: every route is in it with its access
policy, it is a valid OpenAPI 3.1 document, and docs/http-api.md lists the same operations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel, ValidationError

from kpay_faust.app import app
from kpay_faust.payments.api import PaymentAnswer, SubmitPayment
from kpay_faust.web.auth import POLICY
from kpay_faust.web.contract import operation_of
from kpay_faust.web.openapi import document, public_operations

HTTP_API = Path(__file__).resolve().parents[2] / "docs" / "http-api.md"
ROW = re.compile(r"^\| `(GET|POST|DELETE|PUT|PATCH) (/[^` ?]*)[^`]*` \| (\w+) \|", re.M)


@pytest.fixture(scope="module")
def doc() -> dict:
    app.discover()
    return document(app.web.views, "test")


def operations(doc: dict) -> dict[tuple[str, str], dict]:
    return {
        (method.upper(), path): spec
        for path, methods in doc["paths"].items()
        for method, spec in methods.items()
    }


def test_the_document_is_valid_openapi_3_1(doc: dict) -> None:
    assert doc["openapi"] == "3.1.0"
    validate(doc)


def test_every_public_method_declares_its_operation(doc: dict) -> None:
    undeclared = [(m, p) for p, m, op in public_operations(app.web.views) if op is None]
    assert undeclared == []
    documented = set(operations(doc))
    pages = {("GET", "/"), ("GET", "/assets/{name}"), ("GET", "/docs"), ("GET", "/docs/{name}")}
    assert documented == set(POLICY) - pages


def test_each_operation_states_its_role_and_the_errors_it_can_give(doc: dict) -> None:
    for (method, path), spec in operations(doc).items():
        role = POLICY[(method, path)]
        assert spec["x-kpay-role"] == role.name
        if role.name == "anyone":
            assert spec["security"] == []
        else:
            assert spec["security"] == [{"bearer": []}]
            assert {"401", "403"} <= set(spec["responses"]), (method, path)
        if "requestBody" in spec or "parameters" in spec:
            assert "400" in spec["responses"], (method, path)
        assert spec["summary"], f"{method} {path} has no docstring"


def test_amounts_are_documented_as_decimal_strings(doc: dict) -> None:
    schemas = doc["components"]["schemas"]
    amount = schemas["SubmitPayment"]["properties"]["amount"]
    assert amount["type"] == "string" and amount["pattern"]
    assert schemas["AccountAnswer"]["properties"]["balance"]["type"] == "string"
    assert set(schemas["PaymentAnswer"]["properties"]) >= {"from", "to", "state"}


def test_the_examples_in_the_document_are_accepted_by_the_models() -> None:
    app.discover()
    bodies: set[type[BaseModel]] = set()
    for _, _, op in public_operations(app.web.views):
        if op is not None:
            bodies.update(m for m in (op.body, op.answer) if m is not None)
    assert SubmitPayment in bodies and PaymentAnswer in bodies
    assert PaymentAnswer.model_config["json_schema_extra"]["examples"]
    for model in bodies:
        for example in (model.model_config.get("json_schema_extra") or {}).get("examples", []):
            model.model_validate(example)
    with pytest.raises(ValidationError):
        SubmitPayment.model_validate({"from": "a", "to": "b", "amount": 10.5})  # not exact


def test_http_api_md_lists_exactly_the_documented_operations_with_their_roles(doc: dict) -> None:
    listed = {(m, p): role for m, p, role in ROW.findall(HTTP_API.read_text())}
    documented = {key: spec["x-kpay-role"] for key, spec in operations(doc).items()}
    assert listed == documented


def test_an_operation_is_found_on_its_view_method() -> None:
    app.discover()
    view = app.web.views["/payments"]
    op = operation_of(view.post)
    assert op is not None and op.status == 202 and op.body is SubmitPayment
