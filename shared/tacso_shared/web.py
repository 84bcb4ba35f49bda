"""What every service's HTTP API has in common: the flask-smorest Api, errors, health, serving."""

from __future__ import annotations

import json
import logging
from typing import Any, NoReturn

from flask import Flask, jsonify, request
from flask_smorest import Api
from flask_smorest import abort as smorest_abort
from sqlalchemy import Engine, text
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

#: The OpenAPI security scheme of the admin key (see :mod:`tacso_shared.auth`).
SECURITY_SCHEME = "bearerAuth"


def abort(status: int, **kwargs: Any) -> NoReturn:
    """flask-smorest's ``abort`` (JSON error body), typed so checkers know it does not return."""
    smorest_abort(status, **kwargs)
    raise AssertionError("abort returned")  # pragma: no cover - smorest_abort always raises


def configure_app(app: Flask, title: str, version: str, admin_api_key: str) -> Api:
    """Set the OpenAPI options and error handling on ``app``; return its :class:`Api`."""
    app.config.update(
        API_TITLE=title,
        API_VERSION=version,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL="https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
        ADMIN_API_KEY=admin_api_key,
        JSON_SORT_KEYS=False,
    )
    api = Api(app)
    api.spec.components.security_scheme(SECURITY_SCHEME, {"type": "http", "scheme": "bearer"})

    @app.before_request
    def _refuse_nul() -> None:
        # PostgreSQL cannot store NUL in text: refuse it here with a clear answer, not a 500.
        if "\x00" in request.path or any(
            "\x00" in value for _, values in request.args.lists() for value in values
        ):
            abort(400, message="NUL characters are not allowed in the URL.")
        if request.is_json and b"\\u0000" in request.get_data(cache=True):
            body = request.get_json(silent=True)
            fields = (
                sorted(k for k, v in body.items() if "\\u0000" in json.dumps(v))
                if isinstance(body, dict)
                else []
            )
            reason = ["NUL characters are not allowed."]
            abort(
                422,
                message="NUL characters are not allowed.",
                errors={"json": {f: reason for f in fields} if fields else reason},
            )

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
        except Exception as exc:  # noqa: BLE001 - report, don't crash
            return jsonify(status="unavailable", database=str(exc)), 503
        return jsonify(status="ok")
