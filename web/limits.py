"""Request limits: valid text, a body size limit and security headers (pure ASGI middleware),
and the OpenAPI description of the errors and limits the server enforces."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BeforeValidator
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from index.errors import UserError
from qa.retrieve import check_text

# Pages load only their own scripts and styles: injected markup could not run even if it got in.
PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
               "frame-ancestors 'none'")


def too_large_message(max_bytes: int) -> str:
    return f"Request body too large: the limit is {max_bytes // 1024} KB."


def error_body(path: str, message: str, status: int) -> dict:
    """The one-line error every API route answers with: OpenAI's shape under /v1/, else
    {"detail": message}."""
    if path.startswith("/v1/"):
        kind = "invalid_request_error" if status < 500 else "server_error"
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return {"detail": message}


def _valid_unicode(value: Any) -> Any:
    if not isinstance(value, str):
        return value  # the str validator that follows says what is wrong
    try:
        check_text(value, "The text")
    except UserError as exc:
        raise ValueError(str(exc)) from None
    return value


# A string field that refuses unpaired surrogates (JSON can carry them in as \uD800 escapes; the
# tokenizer, the encoder and the JSON response writer all fail on them).
UnicodeText = Annotated[str, BeforeValidator(_valid_unicode)]

# What the server enforces on a question (qa.retrieve.check_question), as JSON Schema: not empty,
# not only whitespace, and at most QA_MAX_QUESTION_CHARS characters (filled in per app).
QUESTION_SCHEMA: dict[str, Any] = {"minLength": 1, "pattern": r"\S",
                                   "x-qa-limit": "max_question_chars"}


class BodyTooLarge(HTTPException):
    """Raised while reading a body without Content-Length; FastAPI answers it with 413."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(status_code=413, detail=too_large_message(max_bytes))


class BodySizeLimit:
    """Refuse request bodies over `max_bytes` with 413 and a one-line JSON message."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body = json.dumps(error_body(scope.get("path", ""),
                                     too_large_message(self.max_bytes), 413)).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:  # a chunked body that lied by omission
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(scope, send)


class SecurityHeaders:
    """nosniff everywhere; a strict Content-Security-Policy on our own HTML pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-content-type-options", b"nosniff"))
                headers.append((b"referrer-policy", b"same-origin"))
                content_type = dict(headers).get(b"content-type", b"")
                if content_type.startswith(b"text/html") and not path.startswith("/docs"):
                    headers.append((b"content-security-policy", PAGE_POLICY.encode()))
                    headers.append((b"x-frame-options", b"DENY"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


# Every API route answers errors with one line in one shape; this is what each status means.
ERROR_RESPONSES = {
    400: "Bad request: a body that is not JSON, or a request the route cannot use (the message "
         "says which).",
    404: "Not found: an unknown document id or model.",
    413: "Request body too large.",
    422: "Invalid request: a missing, malformed or out-of-range field, or a question that is "
         "empty, too long or not valid Unicode (the message names it).",
    500: "Internal error: the server log has the details.",
    503: "The model backend or the index is unavailable; retry or check the server.",
}

ERROR_SCHEMAS = {
    "ErrorResponse": {
        "title": "ErrorResponse", "type": "object", "required": ["detail"],
        "additionalProperties": False,
        "description": "A one-line error message that says what to do.",
        "properties": {"detail": {"type": "string", "title": "Detail"}}},
    "OpenAIErrorResponse": {
        "title": "OpenAIErrorResponse", "type": "object", "required": ["error"],
        "additionalProperties": False,
        "description": "An error in OpenAI's shape, with a one-line message.",
        "properties": {"error": {
            "type": "object", "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string",
                         "enum": ["invalid_request_error", "server_error"]},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]}}}}},
}


def document_api(app, limits: dict[str, int]) -> None:
    """Make app.openapi() describe what the server really does: every route's errors in the
    one-line shapes above (instead of FastAPI's list-of-problems 422 model, which we never send),
    and limits that come from settings (`x-qa-limit` markers become maxLength)."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = generate()
            _document_errors(schema)
            _apply_limits(schema, limits)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


def _document_errors(schema: dict) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(ERROR_SCHEMAS)
    for path, operations in schema.get("paths", {}).items():
        name = "OpenAIErrorResponse" if path.startswith("/v1/") else "ErrorResponse"
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, description in ERROR_RESPONSES.items():
                response = responses.setdefault(str(status), {})
                if response.get("description") in (None, "", "Validation Error"):
                    response["description"] = description
                response["content"] = {"application/json": {
                    "schema": {"$ref": f"#/components/schemas/{name}"}}}
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's, now unreferenced
        if f'"#/components/schemas/{unused}"' not in json.dumps(schema):
            components.pop(unused, None)


def _apply_limits(node: Any, limits: dict[str, int]) -> None:
    if isinstance(node, dict):
        name = node.pop("x-qa-limit", None)
        if name is not None:
            node["maxLength"] = limits[name]
        for value in node.values():
            _apply_limits(value, limits)
    elif isinstance(node, list):
        for value in node:
            _apply_limits(value, limits)
