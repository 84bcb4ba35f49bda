"""Rate limits: per client address on credential and public endpoints, per account on writes.

A view says which limit applies with :func:`rate_limited` (documented in OpenAPI as a 429). The
counters live in ``RATE_LIMIT_STORAGE_URL``: ``memory://`` counts per process (``make up``),
``redis://host:6379/0`` shares them between gunicorn workers and replicas (compose). A refused
request gets ``429`` with ``Retry-After``. When the store cannot be reached requests are let
through (and logged): a limit must not take the API down.

- ``credentials`` (token, set-password): every request, by client address;
- ``public`` (listings and reads open to anyone): anonymous requests, by client address;
- ``signup`` (self-registration): every request, by client address (``RATE_LIMIT_SIGNUP``);
- writes (POST, PUT, PATCH, DELETE) of a known caller: by account; the legacy admin key is an
  operator's tool and is not counted.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, request
from limits import RateLimitItem, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from tacso_shared.auth import optional_caller
from tacso_shared.config import ConfigError, RateLimitSettings
from tacso_shared.web import abort

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

CREDENTIALS = "credentials"
PUBLIC = "public"
WRITES = "writes"
SIGNUP = "signup"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ATTRIBUTE = "_tacso_rate_limit"
_EXTENSION = "tacso_rate_limits"


def rate_limited(category: str) -> Callable[[F], F]:
    """Mark a view as limited by ``category``: credentials, public or signup."""

    def decorate(view: F) -> F:
        setattr(view, _ATTRIBUTE, category)
        doc = getattr(view, "_apidoc", {})
        responses = doc.setdefault("manual_doc", {}).setdefault("responses", {})
        responses["429"] = {
            "description": "Too many requests: wait the seconds of the Retry-After header"
        }
        view._apidoc = doc  # type: ignore[attr-defined]
        return view

    return decorate


class RateLimiter:
    """Counts requests in fixed windows in a shared store; says how long to wait when over."""

    def __init__(self, settings: RateLimitSettings, service: str) -> None:
        self.settings = settings
        self.service = service
        storage = storage_from_string(settings.storage_url)
        if not isinstance(storage, Storage):
            raise ConfigError(f"RATE_LIMIT_STORAGE_URL {settings.storage_url!r} is asynchronous")
        self.storage = storage
        self.strategy = FixedWindowRateLimiter(self.storage)
        self.items: dict[str, RateLimitItem] = {
            CREDENTIALS: parse(settings.credentials),
            PUBLIC: parse(settings.public),
            WRITES: parse(settings.writes),
            SIGNUP: parse(settings.signup),
        }

    def wait(self, category: str, key: str) -> int | None:
        """Count one request of ``key``; ``None`` if allowed, else the seconds to wait."""
        item = self.items[category]
        identifiers = (self.settings.namespace, self.service, category, key)
        try:
            if self.strategy.hit(item, *identifiers):
                return None
            reset = self.strategy.get_window_stats(item, *identifiers).reset_time
        except Exception as exc:  # noqa: BLE001 - the store is down: let the request through
            log.warning("rate limit store unavailable, not limiting: %s", exc)
            return None
        return max(1, math.ceil(reset - time.time()))


def _limit_of_view(app: Flask) -> str | None:
    view = app.view_functions.get(request.endpoint or "")
    if view is None:
        return None
    view_class = getattr(view, "view_class", None)
    handler = getattr(view_class, request.method.lower(), None) if view_class else view
    category: str | None = getattr(handler, _ATTRIBUTE, None)
    return category


def install_rate_limits(app: Flask, settings: RateLimitSettings, service: str) -> None:
    """Check the limits of ``settings`` before every request of ``app``."""
    if not settings.enabled:
        return
    limiter = RateLimiter(settings, service)
    app.extensions[_EXTENSION] = limiter

    def check() -> None:
        category = _limit_of_view(app)
        address = request.remote_addr or "unknown"
        wait: int | None = None
        if category in (CREDENTIALS, SIGNUP):
            wait = limiter.wait(category, address)
        elif request.method in WRITE_METHODS or category == PUBLIC:
            caller = optional_caller()
            if caller is not None and request.method in WRITE_METHODS:
                if caller.via != "admin_key":
                    wait = limiter.wait(WRITES, caller.subject)
            elif caller is None and category == PUBLIC:
                wait = limiter.wait(PUBLIC, address)
        if wait is not None:
            abort(
                429,
                message=f"Too many requests; try again in {wait} seconds.",
                headers={"Retry-After": str(wait)},
            )

    app.before_request(check)
