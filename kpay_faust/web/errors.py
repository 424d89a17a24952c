"""HTTP errors with a message; 503s carry Retry-After so clients back off during rebalances."""

from __future__ import annotations

import http
from typing import Any, TypeVar

import orjson
from faust.web import Request, Response, View
from faust.web.exceptions import WebError
from pydantic import BaseModel, ValidationError


class BadRequest(WebError):
    code = http.HTTPStatus.BAD_REQUEST
    detail = "Bad request."


class Conflict(WebError):
    code = http.HTTPStatus.CONFLICT
    detail = "Conflict."


class Unavailable(WebError):
    code = http.HTTPStatus.SERVICE_UNAVAILABLE
    detail = "Service unavailable. Try again later."


def describe(exc: ValidationError) -> str:
    """One readable reason from a pydantic error: ``amount: must be greater than 0``."""
    parts = []
    for err in exc.errors()[:3]:
        field = ".".join(str(p) for p in err["loc"]) or "payment"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{field}: {msg}")
    return "; ".join(parts)


RETRY_AFTER_SECONDS = "1"
M = TypeVar("M", bound=BaseModel)


class KPayView(View):
    """A view whose errors are JSON ``{"error": ...}``; a 503 says when to retry."""

    async def on_request_error(self, request: Request, exc: WebError) -> Response:
        headers = {"Retry-After": RETRY_AFTER_SECONDS} if exc.code == 503 else None
        return self.error(int(exc.code), exc.detail, headers=headers)

    def reply(
        self, model: type[BaseModel], data: Any, status: int = 200, headers: Any = None
    ) -> Response:
        """``data`` (a dict, or a ``model``) answered as ``model``: what a view sends is what
        the API document says it sends."""
        answer = data if isinstance(data, model) else model.model_validate(data)
        body = answer.model_dump_json(by_alias=True).encode()
        return self.bytes(body, content_type="application/json", status=status, headers=headers)

    def read_query(self, request: Request, model: type[M]) -> M:
        """The request's query parameters validated as ``model``, or a 400 saying why."""
        try:
            return model.model_validate(dict(request.query))
        except ValidationError as exc:
            raise BadRequest(describe(exc)) from None

    async def read_model(self, request: Request, model: type[M], optional: bool = False) -> M:
        """The request body validated as ``model``, or a 400 that says what is wrong;
        ``optional``: an empty body reads as ``{}``."""
        raw = await request.read()
        try:
            doc: Any = {} if optional and not raw.strip() else orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"request body is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise BadRequest("request body must be a JSON object")
        try:
            return model.model_validate(doc)
        except ValidationError as exc:
            raise BadRequest(describe(exc)) from None
