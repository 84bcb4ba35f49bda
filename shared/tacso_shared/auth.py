"""Who may act: for now one admin key, sent as ``Authorization: Bearer <key>``."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, request

from tacso_shared.web import SECURITY_SCHEME, abort

F = TypeVar("F", bound=Callable[..., Any])


def bearer_token() -> str | None:
    """The token of the request's ``Authorization: Bearer`` header, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def has_admin_key() -> bool:
    """True if the request carries the admin key."""
    token = bearer_token()
    expected: str = current_app.config["ADMIN_API_KEY"]
    return token is not None and hmac.compare_digest(token.encode(), expected.encode())


def check_admin_key() -> None:
    """Abort with 401 unless the request carries the admin key."""
    token = bearer_token()
    expected: str = current_app.config["ADMIN_API_KEY"]
    if token is None:
        message, challenge = "Authorization: Bearer <API key> is required.", 'Bearer realm="tacso"'
    elif not hmac.compare_digest(token.encode(), expected.encode()):
        message = "The API key is not valid."
        challenge = 'Bearer realm="tacso", error="invalid_token"'
    else:
        return
    abort(401, message=message, headers={"WWW-Authenticate": challenge})


def admin_required(view: F) -> F:
    """Decorate a view so that it requires the admin key (and document that in OpenAPI)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        check_admin_key()
        return view(*args, **kwargs)

    doc = getattr(wrapper, "_apidoc", {})
    doc.setdefault("manual_doc", {})["security"] = [{SECURITY_SCHEME: []}]
    doc["manual_doc"].setdefault("responses", {})["401"] = {
        "description": "Missing or invalid API key"
    }
    wrapper._apidoc = doc  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
