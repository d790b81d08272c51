"""Document the API's error answers in the OpenAPI schema, for every operation of every router.

Errors are always ``{"detail": "one readable line"}`` (see ``web.app._error``), including 422,
so the schema says so: clients and the schemathesis fuzz suite can rely on it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA = {"title": "Error", "type": "object", "required": ["detail"],
                "properties": {"detail": {"type": "string", "title": "Detail"}}}
ERRORS = {
    "400": "The request could not be understood",
    "401": "Not logged in, or the session expired",
    "403": "Your role may not do this, or the CSRF token is missing",
    "404": "No such record",
    "409": "The record changed since it was read, or it already exists",
    "413": "The request is too large",
    "422": "The input is invalid; detail says what was wrong",
    "429": "Too many failed logins; try again later",
}
_REF = {"$ref": "#/components/schemas/Error"}


def with_error_responses(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the shared error responses to every operation (422 replaces FastAPI's default)."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for ops in schema.get("paths", {}).values():
        for op in ops.values():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            for code, text in ERRORS.items():
                declared = op["responses"].get(code, {})
                # A route that answers an error in its own media type (FHIR's OperationOutcome
                # as application/fhir+json) keeps what it declared.
                own = {k: v for k, v in declared.get("content", {}).items()
                       if k != "application/json"}
                op["responses"][code] = {
                    "description": declared.get("description") or text,
                    "content": own or {"application/json": {"schema": _REF}},
                }
    schemas = schema["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return schema


def install_error_responses(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_error_responses(get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes, servers=app.servers or None))
        return app.openapi_schema

    # FastAPI's documented way to customise the schema; its stubs declare openapi a method.
    app.openapi = openapi  # type: ignore[method-assign]


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ketaclinic API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/swagger-ui/swagger-ui.css"></head>
<body><main id="swagger-ui"></main>
<script src="/static/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/static/swagger-init.js"></script></body></html>
"""


def install_api_docs(app: FastAPI) -> None:
    """/api/docs: Swagger UI from the package's own files (web/static/swagger-ui), no CDN and
    no inline script, so the app's Content-Security-Policy applies unchanged."""
    from fastapi.responses import HTMLResponse

    @app.get("/api/docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return HTMLResponse(DOCS_PAGE)
