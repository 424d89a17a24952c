"""The API contract, served: ``/openapi.json`` (generated from the code, see ``web.openapi``)
and Swagger UI at ``/docs``, from the files the ``swagger-ui-py`` package ships, so it works
offline. Both are open: the contract is no secret, and every call made from Swagger UI still
needs a token (its Authorize button)."""

from __future__ import annotations

from importlib import metadata, resources

import orjson
from faust.web import Request, Response

from kpay_faust.app import app
from kpay_faust.web.contract import operation
from kpay_faust.web.errors import KPayView
from kpay_faust.web.files import ServedFiles
from kpay_faust.web.openapi import document

SWAGGER_UI = resources.files("swagger_ui") / "static"
#: The Swagger UI files the page loads (nothing else of the package's folder is served).
SWAGGER_FILES = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
    "LICENSE": "text/plain",
}
CACHED = "public, max-age=3600"
DOCS_PAGE = b"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>KPay API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
<link rel="icon" href="/docs/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/assets/docs.js"></script>
</body>
</html>
"""
_document: bytes | None = None


def openapi_bytes() -> bytes:
    """The document, made once per worker (the routes do not change while it runs)."""
    global _document
    if _document is None:
        made = document(app.web.views, metadata.version("kpay-faust"))
        _document = orjson.dumps(made)
    return _document


@app.page("/openapi.json")
class OpenAPIView(KPayView):
    @operation("service", None)
    async def get(self, request: Request) -> Response:
        """This document: every route, parameter, body, answer, error and role of the API,
        generated from the code."""
        return self.bytes(openapi_bytes(), content_type="application/json")


@app.page("/docs")
class DocsView(KPayView):
    in_api = False  # a page for people, not part of the API

    async def get(self, request: Request) -> Response:
        return self.bytes(DOCS_PAGE, content_type="text/html")


@app.page("/docs/{name}")
class DocsFileView(ServedFiles):
    folder = SWAGGER_UI
    files = SWAGGER_FILES
    headers = {"Cache-Control": CACHED}
