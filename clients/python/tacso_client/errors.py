"""Errors: one class per kind of refusal, each carrying what the API said.

Every API answers a refusal with ``{"code", "status", "message", "errors"}``, where ``errors``
names the fields and the reasons (``{"json": {"email": ["Not a valid email address."]}}``);
the token endpoint answers as OAuth 2.0 does (``{"error", "error_description"}``).
"""

from __future__ import annotations

from typing import Any

import requests


class ApiError(Exception):
    """An API answered with a status of 400 or more."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: dict[str, Any] | None = None,
        response: requests.Response | None = None,
    ) -> None:
        super().__init__(f"{status} {message}" + (f": {errors}" if errors else ""))
        self.status = status
        self.message = message
        #: The API's field messages, as it sent them (``{"json": {"email": [...]}}``).
        self.errors: dict[str, Any] = errors or {}
        self.response = response

    def field_errors(self) -> dict[str, list[str]]:
        """The messages per field, whatever part of the request they were about.

        ``{"json": {"email": ["..."]}, "query": {"page": ["..."]}}`` gives
        ``{"email": [...], "page": [...]}``; a nested field is named with dots
        (``venue.city``).
        """
        found: dict[str, list[str]] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict):
                for key, inner in value.items():
                    walk(f"{prefix}.{key}" if prefix else str(key), inner)
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                found.setdefault(prefix, []).extend(value)
            else:
                found.setdefault(prefix, []).append(str(value))

        for part in self.errors.values():
            walk("", part)
        return found


class BadRequest(ApiError):
    """400: the request could not be read (malformed JSON, a bad grant)."""


class Unauthorized(ApiError):
    """401: no credential, or one the API does not accept."""


class Forbidden(ApiError):
    """403: a known caller without the right."""


class NotFound(ApiError):
    """404: no such resource (or another country's draft)."""


class Conflict(ApiError):
    """409: the request conflicts with the resource's state (an email already registered)."""


class ValidationFailed(ApiError):
    """422: the request was read but a field is wrong; :attr:`errors` says which and why."""


class RateLimited(ApiError):
    """429 after the client's retries: too many requests; wait :attr:`retry_after` seconds."""

    @property
    def retry_after(self) -> float | None:
        """The server's ``Retry-After`` in seconds, when it sent a number."""
        value = self.response.headers.get("Retry-After") if self.response is not None else None
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None


class ServerError(ApiError):
    """5xx: the service failed (500) or is unavailable (503, after the client's retries)."""


class ServiceUnavailable(ServerError):
    """503: the service (or one it depends on) is unavailable right now."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: ValidationFailed,
    429: RateLimited,
    503: ServiceUnavailable,
}


def error_for(response: requests.Response) -> ApiError:
    """The exception for a refused ``response``, with the API's message and field errors."""
    status = response.status_code
    message = response.reason or "error"
    errors: dict[str, Any] = {}
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = str(body.get("message") or body.get("error_description") or message)
        if isinstance(body.get("errors"), dict):
            errors = body["errors"]
        if "error" in body and "message" not in body:
            errors = {"oauth": {str(body["error"]): [message]}}
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    return cls(status, message, errors, response)
