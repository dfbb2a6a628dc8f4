"""Errors the API answers as JSON instead of a server error.

Services raise Django's ``ValidationError`` for domain rules; here it becomes a 400 with
field-level messages (``{"field": ["message"]}``, ``non_field_errors`` for the rest), a
``StaleReference`` a 409 carrying the reference as it is now, and an oversized body a 413.
The JSON parser refuses text PostgreSQL cannot store (NUL, lone surrogates), so such input
is a 400 rather than a database error.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from coding.api.serializers import ReferenceSerializer, reference_rows
from coding.models import Reference
from coding.services import StaleReference


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


def check_body_size(request, limit: int | None = None) -> None:
    """Refuse a body over ``limit`` bytes (default DATA_UPLOAD_MAX_MEMORY_SIZE) before
    anything reads it.

    Django enforces the limit only for form bodies; DRF's JSON parser reads the stream
    directly, so without this a client could make a process hold any amount of JSON. File
    uploads pass their own, larger limit.
    """
    if limit is None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if limit is not None and length > limit:
        raise PayloadTooLarge(f"The request body has {length} bytes; the limit is {limit} bytes.")


def _unstorable(value: Any) -> str | None:
    """Describe the first string in ``value`` that a database cannot store, if any."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "Text may not contain NUL (\\u0000) characters."
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "Text may not contain unpaired surrogate escapes (\\ud800-\\udfff)."
    return None


class StrictJSONParser(JSONParser):
    """JSON limited to what the database can store; deep nesting is a 400, not a crash."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply.") from None
        problem = _unstorable(data)
        if problem:
            raise ParseError(f"JSON parse error - {problem}")
        return data


def validation_detail(exc: DjangoValidationError) -> dict[str, list[str]]:
    """A service's ValidationError as DRF-style field errors."""
    if hasattr(exc, "error_dict"):
        return {
            ("non_field_errors" if field == NON_FIELD_ERRORS else field): messages
            for field, messages in exc.message_dict.items()
        }
    return {"non_field_errors": exc.messages}


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, StaleReference):
        current = reference_rows(Reference.objects.filter(pk=exc.current.pk)).first()
        return Response(
            {"detail": exc.messages[0], "current": ReferenceSerializer(current).data if current else None},
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, DjangoValidationError):
        return Response(validation_detail(exc), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        # Django's multipart parser refuses these; as a 400 in JSON rather than its HTML page.
        exc = ParseError(f"Multipart parse error - {exc}")
    return drf_exception_handler(exc, context)
