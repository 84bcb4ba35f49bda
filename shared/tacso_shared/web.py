"""What every service's HTTP API has in common: the flask-smorest Api, errors, health, serving.

How a request is read is decided here, once, for all three services:

- the URL and the headers are checked first (NUL characters 400, a URL over
  :data:`MAX_URL_LENGTH` 414, a header over :data:`MAX_HEADER_LENGTH` or more than
  :data:`MAX_HEADER_COUNT` headers 431), then the declared body size (over ``MAX_CONTENT_LENGTH``
  413), all before authentication and without reading the body;
- a body is read only by a route that takes one (a flask-smorest ``json`` argument), after its
  authentication: it must be ``application/json`` (otherwise 415), UTF-8, well-formed JSON without
  ``NaN``/``Infinity`` or repeated keys, nested at most :data:`MAX_JSON_DEPTH` deep (otherwise
  400); numbers of more than :data:`MAX_NUMBER_DIGITS` digits, infinite numbers, lone surrogates
  and NUL characters are 422 naming the field;
- a route that takes no body never reads one, whatever is sent.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator
from typing import Any, NoReturn

import flask_smorest
from flask import Flask, Request, Response, current_app, jsonify, request
from flask.json.provider import DefaultJSONProvider
from flask_smorest import Api
from flask_smorest import abort as smorest_abort
from marshmallow import fields
from sqlalchemy import Engine, text
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from tacso_shared.apidocs import add_api_docs
from tacso_shared.config import CommonSettings
from tacso_shared.instrumentation import instrument_app

log = logging.getLogger(__name__)

#: The OpenAPI security scheme of tokens and keys (see :mod:`tacso_shared.auth`).
SECURITY_SCHEME = "bearerAuth"

#: Longest request target (path and query) answered; longer is 414. Below gunicorn's own limit
#: (see :mod:`tacso_shared.runtime`) so that the answer is ours, in JSON.
MAX_URL_LENGTH = 4094
#: Longest header line (name, colon, value) answered; longer is 431.
MAX_HEADER_LENGTH = 8190
#: Most headers a request may carry; more is 431.
MAX_HEADER_COUNT = 100
#: Deepest nesting of arrays and objects in a JSON body; our deepest schema needs 3.
MAX_JSON_DEPTH = 32
#: Most digits of a number in a JSON body (Python refuses to parse more than 4,300 at all).
MAX_NUMBER_DIGITS = 100

_SURROGATE = re.compile("[\ud800-\udfff]")


class BodyRefused(ValueError):
    """A request body that is refused, with the status to answer and the reason."""

    def __init__(self, status: int, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field


def abort(status: int, **kwargs: Any) -> NoReturn:
    """flask-smorest's ``abort`` (JSON error body), typed so checkers know it does not return."""
    smorest_abort(status, **kwargs)
    raise AssertionError("abort returned")  # pragma: no cover - smorest_abort always raises


def _refuse_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise BodyRefused(400, "The JSON body repeats a key in an object.")
    return document


def _refuse_constant(name: str) -> NoReturn:
    raise BodyRefused(400, f"{name} is not allowed in JSON.")


def _parse_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise BodyRefused(422, f"Numbers may have at most {MAX_NUMBER_DIGITS} digits.")
    return int(digits)


def _parse_float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_DIGITS:
        raise BodyRefused(422, f"Numbers may have at most {MAX_NUMBER_DIGITS} digits.")
    value = float(literal)
    if not math.isfinite(value):
        raise BodyRefused(422, "The number is too large.")
    return value


def _strings(document: Any) -> Iterator[tuple[str | None, str]]:
    """Yield (top-level key, string) for every key and string in ``document``, iteratively.

    Raises :class:`BodyRefused` for nesting deeper than :data:`MAX_JSON_DEPTH`.
    """
    stack: list[tuple[Any, int, str | None]] = [(document, 0, None)]
    while stack:
        value, depth, top = stack.pop()
        if isinstance(value, str):
            yield top, value
            continue
        if not isinstance(value, dict | list):
            continue
        if depth >= MAX_JSON_DEPTH:
            raise BodyRefused(400, f"The JSON body is nested deeper than {MAX_JSON_DEPTH}.")
        if isinstance(value, dict):
            for key, item in value.items():
                field = key if depth == 0 else top
                yield field, key
                stack.append((item, depth + 1, field))
        else:
            stack.extend((item, depth + 1, top) for item in value)


def parse_json_document(data: str | bytes) -> Any:
    """Parse a JSON request body under the rules of this module; raise :class:`BodyRefused`."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise BodyRefused(400, "The JSON body is not valid UTF-8.") from None
    try:
        document = json.loads(
            data,
            object_pairs_hook=_refuse_pairs,
            parse_constant=_refuse_constant,
            parse_int=_parse_int,
            parse_float=_parse_float,
        )
    except RecursionError:
        raise BodyRefused(400, f"The JSON body is nested deeper than {MAX_JSON_DEPTH}.") from None
    except json.JSONDecodeError as exc:
        raise BodyRefused(400, f"The body is not valid JSON: {exc.msg}.") from None
    for field, value in _strings(document):
        if "\x00" in value:
            raise BodyRefused(422, "NUL characters are not allowed.", field)
        if _SURROGATE.search(value):
            raise BodyRefused(422, "Lone surrogates (invalid Unicode) are not allowed.", field)
    return document


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, reading with :func:`parse_json_document` (``request.get_json``)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Parse ``s`` strictly; a refusal is a ``ValueError``, so werkzeug answers 400."""
        return parse_json_document(s)


def _has_body(req: Request) -> bool:
    return bool(req.content_length) or "chunked" in req.headers.get("Transfer-Encoding", "")


class JsonBodyParser(FlaskParser):
    """webargs' Flask parser, reading JSON bodies with :func:`parse_json_document`."""

    def _raw_load_json(self, req: Request) -> Any:
        if not is_json_request(req):
            if _has_body(req):
                abort(415, message="The body must be JSON (Content-Type: application/json).")
            return core.missing
        try:
            return parse_json_document(req.get_data(cache=True))
        except BodyRefused as exc:
            errors = {exc.field: [exc.reason]} if exc.field is not None else [exc.reason]
            abort(exc.status, message=exc.reason, errors={"json": errors})

    def load_json_or_form(self, req: Request, schema: Any) -> Any:
        """A form-encoded body if it is one (OAuth 2.0 token requests), else the JSON body."""
        if req.mimetype != FORM_CONTENT_TYPE:
            return self.load_json(req, schema)
        for name, values in req.form.lists():
            if any("\x00" in value or _SURROGATE.search(value) for value in values):
                reason = "NUL characters and lone surrogates are not allowed."
                abort(422, message=reason, errors={"form": {name: [reason]}})
        return self._makeproxy(req.form, schema)


#: The content type of HTML form bodies, which OAuth 2.0 token requests use.
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]  # flask-smorest is untyped
    """flask-smorest's Blueprint, reading arguments with :class:`JsonBodyParser`.

    ``location="json_or_form"`` is documented as a form body; add the JSON form with ``doc``.
    """

    ARGUMENTS_PARSER = JsonBodyParser()
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING = {
        **flask_smorest.Blueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING,
        "json_or_form": FORM_CONTENT_TYPE,
    }


class AsciiInteger(fields.Integer):
    """An integer written with ASCII digits only (``int()`` also takes ``١`` or ``²``-like ones)."""

    def _validated(self, value: Any) -> int:
        if isinstance(value, str) and not re.fullmatch(r"[+-]?[0-9]{1,20}", value.strip()):
            raise self.make_error("invalid")
        return super()._validated(value)


def _check_request_head() -> None:
    """Refuse what can be refused from the URL and headers alone, before reading anything."""
    if "\x00" in request.path or any(
        "\x00" in value for _, values in request.args.lists() for value in values
    ):
        abort(400, message="NUL characters are not allowed in the URL.")
    target = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
    if max(len(target), len(request.full_path)) > MAX_URL_LENGTH:
        abort(414, message=f"The URL is longer than {MAX_URL_LENGTH} characters.")
    headers = list(request.headers.items())
    if len(headers) > MAX_HEADER_COUNT:
        abort(431, message=f"A request may carry at most {MAX_HEADER_COUNT} headers.")
    for name, value in headers:
        if len(name) + 2 + len(value) > MAX_HEADER_LENGTH:
            abort(431, message=f"The {name} header is longer than {MAX_HEADER_LENGTH} characters.")
    limit: int = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and request.content_length > limit:
        abort(413, message=f"The body is larger than {limit} bytes.")


#: The policy of every API response: JSON needs nothing loaded, and nobody may frame it.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
#: The policy of the Swagger UI page (``/docs``): its scripts and styles come from jsDelivr.
DOCS_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: "
    "https://cdn.jsdelivr.net; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"


def _security_headers(response: Response) -> Response:
    """Headers every response carries, whatever produced it (errors included)."""
    headers = response.headers
    docs = request.path.rstrip("/").endswith("/docs")
    headers.setdefault("Content-Security-Policy", DOCS_CSP if docs else API_CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.is_secure:
        # Only over TLS (directly, or behind a proxy the app is told about): on plain HTTP the
        # header is ignored by browsers, and in development it would pin localhost to HTTPS.
        headers.setdefault("Strict-Transport-Security", HSTS)
    if "Authorization" in request.headers and "Cache-Control" not in headers:
        # An answer to a credential is the caller's own: no shared cache may keep it.
        headers["Cache-Control"] = "no-store"
    return response


def configure_app(app: Flask, title: str, version: str, settings: CommonSettings) -> Api:
    """Set the OpenAPI options, request limits and error handling on ``app``; return its Api."""
    app.json = StrictJSONProvider(app)
    app.config.update(
        API_TITLE=title,
        API_VERSION=version,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        ADMIN_API_KEY=settings.admin_api_key,
        # werkzeug enforces it too while reading, which covers bodies sent without a length.
        MAX_CONTENT_LENGTH=settings.max_content_length,
        JSON_SORT_KEYS=False,
    )
    api = Api(app)
    api.spec.components.security_scheme(
        SECURITY_SCHEME,
        {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A token from registry's `POST /api/v1/auth/token`; registry also "
            "takes an API key itself; the legacy `ADMIN_API_KEY`, where set, acts as a "
            "network admin.",
        },
    )
    # First, so that a request refused by the checks below still has its id, metrics and log.
    instrument_app(app, settings.service)
    add_api_docs(app, title)
    app.before_request(_check_request_head)
    app.after_request(_security_headers)

    @app.errorhandler(MethodNotAllowed)
    def _method_not_allowed(exc: MethodNotAllowed) -> Any:
        # flask-smorest's JSON error drops werkzeug's headers; RFC 9110 wants Allow on a 405.
        response: Response = app.make_response(api.handle_http_exception(exc))
        response.headers["Allow"] = ", ".join(sorted(exc.valid_methods or ()))
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        if isinstance(exc, HTTPException):
            return exc
        log.exception("unhandled error")
        return jsonify(code=500, status="Internal Server Error", message="Unexpected error."), 500

    return api


def add_health(app: Flask, engine: Engine) -> None:
    """``GET /healthz``: 200 when the database answers, 503 otherwise."""

    @app.get("/healthz")
    def healthz() -> Any:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            # The exception names hosts and users: it goes to the log, not to anyone who asks.
            log.exception("health check: the database does not answer")
            return jsonify(status="unavailable", database="not answering"), 503
        return jsonify(status="ok")
