"""The API contract as the code states it: each view method declares its operation (query,
body, answer models and the errors it can give), and ``kpay_faust.web.openapi`` builds the
OpenAPI document from those declarations, the routes and the access policy. A view answers
through its answer model, so what it sends is what the document says."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

JSON = "application/json"
F = TypeVar("F", bound=Callable[..., Any])


class ErrorAnswer(BaseModel):
    """Every error: a 4xx (or a 503 while the cluster rebalances) with a readable reason."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"error": "no account 'neil'"}]})

    error: str = Field(description="What went wrong, for a person to read.")


@dataclass(frozen=True)
class Operation:
    """One method of one route: what it takes and what it answers."""

    tag: str
    answer: type[BaseModel] | None  # None: the body is not JSON (``media_type`` says what)
    status: int = 200
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    body_optional: bool = False
    path: Mapping[str, Any] = field(default_factory=dict)  # path parameter -> annotated type
    errors: Mapping[int, str] = field(default_factory=dict)  # status -> when it is answered
    media_type: str = JSON
    #: The answer for an error status when it is not ``ErrorAnswer`` (``/health``'s 503).
    error_answers: Mapping[int, type[BaseModel]] = field(default_factory=dict)
    doc: str = ""  # the view method's docstring: summary, blank line, description


OPERATION = "__kpay_operation__"


def operation(tag: str, answer: type[BaseModel] | None, **details: Any) -> Callable[[F], F]:
    """Declare a view method's operation; the method's docstring is its description."""

    def attach(method: F) -> F:
        setattr(method, OPERATION, Operation(tag, answer, doc=method.__doc__ or "", **details))
        return method

    return attach


def operation_of(method: Any) -> Operation | None:
    return getattr(method, OPERATION, None)


#: Errors a route can give because of how it finds its data.
ROUTED = {503: "the key's owner is changing or did not answer (rebalancing); see Retry-After"}
GATHERED = {503: "a partition has no serving worker yet, or a worker did not answer"}
UNREADABLE = {409: "its stored row cannot be read (bytes on the changelog KPay did not write)"}
