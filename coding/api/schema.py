"""Additions to the generated OpenAPI schema: the error answers every endpoint can give.

drf-spectacular documents the success responses it sees in the views; the errors come from
DRF, ``access.py`` and ``coding/api/errors.py`` for every endpoint alike, so they are added
here once instead of on each view. The schema then lists every status code the API answers,
which schemathesis checks in the test suite.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema


class ApiSchema(AutoSchema):
    def _get_paginator(self):
        # Only GET lists page; a POST to a list URL answers what it made as a plain list.
        return super()._get_paginator() if self.method == "GET" else None


ERROR = {
    "type": "object",
    "description": (
        "`detail` says what went wrong. A 400 for bad input instead names each field with its "
        'messages, e.g. `{"end": ["Offsets [3, 90) lie outside clause 1-2 [3, 40)."]}`, and '
        "`non_field_errors` for problems of the request as a whole."
    ),
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": {},
}

PUBLIC = {"/api/auth/token/", "/api/schema/"}


def _error(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def add_error_responses(result: dict, generator, request, public) -> dict:
    """Postprocessing hook (SPECTACULAR_SETTINGS): document 400/401/403/404/413/429 answers."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            parameters = operation.get("parameters", [])
            has_query = any(p.get("in") == "query" for p in parameters)
            has_body = "requestBody" in operation
            if has_query or has_body:
                responses.setdefault("400", _error("Bad input: field-level messages."))
            elif method != "get":
                # A write without input can still be refused by a domain rule (e.g. merging the
                # last clause, deleting a node that has references, removing the only admin).
                responses.setdefault("400", _error("Refused: the messages say which rule the change breaks."))
            if has_body:
                responses.setdefault("413", _error("The request body is too large."))
                responses.setdefault("415", _error("The body is not in a media type the operation reads."))
            if path in PUBLIC:
                if path == "/api/auth/token/":
                    responses.setdefault("429", _error("Too many attempts; wait and try again."))
                continue
            responses.setdefault("401", _error("Not authenticated: send `Authorization: Token <key>`."))
            responses.setdefault("403", _error("Your role in this project may not do this."))
            if any(p.get("in") == "path" for p in parameters) or any(p.get("name") == "page" for p in parameters):
                responses.setdefault("404", _error("No such project (or not a member), object, or page."))
    return result
