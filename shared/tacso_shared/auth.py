"""Who may act: for now one admin key, sent as ``Authorization: Bearer <key>``."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, request
from flask_smorest import abort

F = TypeVar("F", bound=Callable[..., Any])

#: The OpenAPI security scheme name, declared by :func:`tacso_shared.web.create_api`.
SECURITY_SCHEME = "bearerAuth"


def bearer_token() -> str | None:
    """The token of the request's ``Authorization: Bearer`` header, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def check_admin_key() -> None:
    """Abort with 401 unless the request carries the admin key."""
    token = bearer_token()
    expected: str = current_app.config["ADMIN_API_KEY"]
    if token is None:
        abort(401, message="Authorization: Bearer <API key> is required.",
              headers={"WWW-Authenticate": 'Bearer realm="tacso"'})
    if not hmac.compare_digest(token.encode(), expected.encode()):
        abort(401, message="The API key is not valid.",
              headers={"WWW-Authenticate": 'Bearer realm="tacso", error="invalid_token"'})


def admin_required(view: F) -> F:
    """Decorate a view so that it requires the admin key (and document that in OpenAPI)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        check_admin_key()
        return view(*args, **kwargs)

    doc = getattr(wrapper, "_apidoc", {})
    doc.setdefault("manual_doc", {})["security"] = [{SECURITY_SCHEME: []}]
    doc["manual_doc"].setdefault("responses", {})["401"] = {"description": "Missing or invalid API key"}
    wrapper._apidoc = doc  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
