"""The OpenAPI 3.1 document, generated from the routes, the operation each view method declares
(``web.contract``) and the access policy (``web.auth.POLICY``): never written by hand, so it
cannot drift from the code. ``docs/http-api.md`` is checked against it by a test."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from kpay_faust.web.auth import INTERNAL, POLICY
from kpay_faust.web.contract import JSON, ErrorAnswer, Operation, operation_of
from kpay_faust.web.tokens import Role

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{model}"
PATH_PARAMETER = re.compile(r"{(\w+)}")
TAGS = {
    "payments": "Submit payments and follow them to their outcome.",
    "accounts": "Open and fund accounts; balances, answered by the worker that owns them.",
    "pipeline": "Totals of payments in flight, confirmed and rejected.",
    "metrics": "The instrumentation plane: windowed throughput, latency, Prometheus.",
    "control": "The control plane: pause, resume and rate-limit the whole cluster.",
    "operations": "Reconciliation, dead letters, audit trail and warnings.",
    "load": "A demo load of payments, run by the worker.",
    "console": "The browser console and what it reads.",
    "service": "Health, the caller, and this document.",
}
ROLES = (
    "Every request but the open ones needs `Authorization: Bearer <token>`; a token has one "
    "role, and a higher role may do all a lower one may: viewer < client < operator. No token "
    "or an unknown one: 401; a role too low: 403."
)


def public_operations(views: Mapping[str, Any]) -> Iterator[tuple[str, str, Operation | None]]:
    """(path, method, declared operation or None) of every method of every public route."""
    for path, view in sorted(views.items()):
        if path.startswith(INTERNAL) or not getattr(view, "in_api", True):
            continue
        for method in sorted(view.get_methods() - {"HEAD"}):
            yield path, method, operation_of(getattr(view, method.lower()))


def document(views: Mapping[str, Any], version: str) -> dict[str, Any]:
    """The document of ``views`` (``app.web.views``: path -> view)."""
    found = [(p, m, op) for p, m, op in public_operations(views) if op is not None]
    schemas = _schemas(found)
    paths: dict[str, dict[str, Any]] = {}
    for path, method, op in found:
        paths.setdefault(path, {})[method.lower()] = _operation(path, method, op)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "KPay",
            "version": version,
            "description": "An event-streaming payment system on Faust and Apache Kafka. "
            'Amounts are decimal strings; every error is `{"error": ...}`. ' + ROLES,
        },
        "tags": [{"name": name, "description": text} for name, text in TAGS.items()],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _schemas(found: list[tuple[str, str, Operation]]) -> dict[str, Any]:
    used: list[tuple[type[BaseModel], Any]] = [(ErrorAnswer, "serialization")]
    for _, _, op in found:
        if op.answer is not None:
            used.append((op.answer, "serialization"))
        used.extend((model, "serialization") for model in op.error_answers.values())
        if op.body is not None:
            used.append((op.body, "validation"))
    unique = list(dict.fromkeys(used))
    _, top = models_json_schema(unique, ref_template=REF)
    return dict(sorted(top.get("$defs", {}).items()))


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _operation(path: str, method: str, op: Operation) -> dict[str, Any]:
    role = POLICY.get((method, path))
    if role is None:
        raise LookupError(f"{method} {path} has an operation but no access policy")
    summary, description = _texts(op, role)
    if op.answer is not None:
        schema = _ref(op.answer)
    else:  # a document of its own, or text
        schema = {"type": "object"} if op.media_type == JSON else {"type": "string"}
    answer: dict[str, Any] = {
        "description": "OK" if op.status == 200 else "Accepted",
        "content": {op.media_type: {"schema": schema}},
    }
    responses: dict[str, Any] = {str(op.status): answer}
    for status, meaning in sorted(_errors(path, op, role).items()):
        model = op.error_answers.get(status, ErrorAnswer)
        responses[str(status)] = {
            "description": meaning,
            "content": {JSON: {"schema": _ref(model)}},
        }
    spec: dict[str, Any] = {
        "tags": [op.tag],
        "summary": summary,
        "description": description,
        "operationId": f"{method.lower()}{_camel(path)}",
        "x-kpay-role": role.name,
        "responses": responses,
    }
    parameters = _path_parameters(path, op) + _query_parameters(op)
    if parameters:
        spec["parameters"] = parameters
    if op.body is not None:
        spec["requestBody"] = {
            "required": not op.body_optional,
            "content": {JSON: {"schema": _ref(op.body)}},
        }
    spec["security"] = [] if role is Role.anyone else [{"bearer": []}]
    return spec


def _texts(op: Operation, role: Role) -> tuple[str, str]:
    first, _, rest = op.doc.replace("``", "`").strip().partition("\n\n")
    summary = " ".join(first.split())
    who = "Open to anyone." if role is Role.anyone else f"Role: {role.name} or above."
    return summary, (" ".join(rest.split()) + "\n\n" + who).strip()


def _errors(path: str, op: Operation, role: Role) -> dict[int, str]:
    errors: dict[int, str] = {}
    if op.query is not None or op.body is not None or op.path:
        errors[400] = "a parameter or the body is not valid: the error says which and why"
    if role is not Role.anyone:
        errors[401] = "no bearer token, or an unknown one"
        errors[403] = f"the token's role is below {role.name}"
    if op.body is not None:
        errors[413] = "the body is larger than KPAY_MAX_BODY_BYTES"
        errors[415] = "the body was sent with a Content-Encoding other than identity"
    errors.update(op.errors)
    if op.path and 404 not in errors:
        errors[404] = "not found"
    return errors


def _path_parameters(path: str, op: Operation) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": TypeAdapter(op.path.get(name, str)).json_schema(),
        }
        for name in PATH_PARAMETER.findall(path)
    ]


def _query_parameters(op: Operation) -> list[dict[str, Any]]:
    if op.query is None:
        return []
    schema = op.query.model_json_schema(ref_template=REF)
    required = set(schema.get("required", ()))
    found = []
    for name, field in schema.get("properties", {}).items():
        described = {"name": name, "in": "query", "required": name in required}
        if "description" in field:
            described["description"] = field["description"]
        described["schema"] = _not_null({k: v for k, v in field.items() if k != "description"})
        found.append(described)
    return found


def _camel(path: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", path.replace("{", "by_").replace("}", ""))
    return "".join(word[:1].upper() + word[1:] for word in words if word) or "Root"


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without pydantic's ``null`` alternative: a parameter is
    absent, never null."""
    options = [o for o in schema.get("anyOf", ()) if o.get("type") != "null"]
    if len(options) != 1:
        return schema
    kept = {k: v for k, v in schema.items() if k != "anyOf" and (k, v) != ("default", None)}
    return {**kept, **options[0]}
