"""Who may act: the caller of a request, and the rule next to each view (401, 403, OpenAPI).

A request proves its caller with ``Authorization: Bearer <credential>``, where the credential is
one of: a token issued by registry (verified locally, see :mod:`tacso_shared.identity`), an API
key (registry only; other services take the token it is exchanged for), or the legacy
``ADMIN_API_KEY`` (a network admin; unset turns it off).

Each view says who may call it with :func:`require` (roles) or :func:`public`; both also write
the rule into the OpenAPI document (``security``, the 401/403 responses and ``x-roles``), so the
authorisation matrix test can tell an operation without a rule. Finer rules (country, own
organisation) are plain functions in each service's ``access`` module, called by the view.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from flask import current_app, g, request

from tacso_shared.config import CommonSettings
from tacso_shared.identity import (
    ADMIN_KEY_CALLER,
    NETWORK_ADMIN,
    ROLES,
    Caller,
    InvalidCredential,
    KeySet,
    TokenVerifier,
    audience_of,
    http_jwks,
    looks_like_jwt,
)
from tacso_shared.web import SECURITY_SCHEME, abort

F = TypeVar("F", bound=Callable[..., Any])

#: The OpenAPI extension that lists the roles an operation admits (``["public"]`` for anyone).
ROLES_EXTENSION = "x-roles"
PUBLIC = "public"
_EXTENSION = "tacso_authentication"


def bearer_token() -> str | None:
    """The token of the request's ``Authorization: Bearer`` header, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@dataclass(frozen=True)
class Authentication:
    """How one service recognises its callers."""

    #: The legacy shared key (a network admin); ``None`` turns it off.
    admin_api_key: str | None
    #: Verifies registry's tokens for this service's audience.
    verify_token: Callable[[str], Caller] | None = None
    #: Looks an API key up (registry only): ``None`` when the credential is no API key of ours.
    verify_api_key: Callable[[str], Caller | None] | None = None

    def caller_for(self, credential: str) -> Caller:
        """The caller ``credential`` proves; :class:`InvalidCredential` if it proves no one."""
        if self.admin_api_key and hmac.compare_digest(
            credential.encode(), self.admin_api_key.encode()
        ):
            return ADMIN_KEY_CALLER
        if looks_like_jwt(credential):
            if self.verify_token is None:
                raise InvalidCredential("this service accepts no tokens")
            return self.verify_token(credential)
        if self.verify_api_key is not None:
            caller = self.verify_api_key(credential)
            if caller is not None:
                return caller
        raise InvalidCredential("the credential is not valid")


def token_authentication(settings: CommonSettings) -> Authentication:
    """Registry's tokens, verified against its JWK set (cached), and the admin key if set."""
    keys = KeySet(http_jwks(settings.jwks_url), ttl=settings.jwks_cache_seconds)
    verifier = TokenVerifier(keys, audience_of(settings.service))
    return Authentication(settings.admin_api_key, verifier.verify)


def install_authentication(app: Any, authentication: Authentication) -> None:
    """Make ``app`` recognise callers the way ``authentication`` says."""
    app.extensions[_EXTENSION] = authentication


def _authentication() -> Authentication:
    found: Authentication | None = current_app.extensions.get(_EXTENSION)
    if found is None:
        # An app that installed nothing knows the admin key alone.
        return Authentication(current_app.config.get("ADMIN_API_KEY") or None)
    return found


def _unauthorised(message: str, error: str | None = None) -> NoReturn:
    challenge = 'Bearer realm="tacso"' + (f', error="{error}"' if error else "")
    abort(401, message=message, headers={"WWW-Authenticate": challenge})


def authenticate() -> Caller:
    """The request's caller; aborts with 401 when there is no valid credential."""
    cached: Caller | None = g.get("tacso_caller")
    if cached is not None:
        return cached
    token = bearer_token()
    if token is None:
        _unauthorised("Authorization: Bearer <token or API key> is required.")
    try:
        caller = _authentication().caller_for(token)
    except InvalidCredential:
        _unauthorised("The token or API key is not valid.", "invalid_token")
    g.tacso_caller = caller
    return caller


def optional_caller() -> Caller | None:
    """The request's caller if it sent a valid credential; ``None`` otherwise (public views)."""
    cached: Caller | None = g.get("tacso_caller")
    if cached is not None:
        return cached
    token = bearer_token()
    if token is None:
        return None
    try:
        caller = _authentication().caller_for(token)
    except InvalidCredential:
        return None
    g.tacso_caller = caller
    return caller


def current_caller() -> Caller:
    """The caller of a view decorated with :func:`require`."""
    caller: Caller | None = g.get("tacso_caller")
    if caller is None:  # pragma: no cover - only views under require() ask
        raise RuntimeError("current_caller() outside a view that requires a caller")
    return caller


def forbid(message: str = "You may not do this.") -> NoReturn:
    """Answer 403: the caller is known but lacks the right."""
    abort(403, message=message)


def _document(wrapper: Any, roles: list[str], secured: bool) -> None:
    doc = getattr(wrapper, "_apidoc", {})
    manual = doc.setdefault("manual_doc", {})
    manual[ROLES_EXTENSION] = roles
    if secured:
        manual["security"] = [{SECURITY_SCHEME: []}]
        responses = manual.setdefault("responses", {})
        responses["401"] = {"description": "No credential, or one that is not valid"}
        responses["403"] = {"description": "The caller's role or scope does not allow this"}
    wrapper._apidoc = doc


def require(*roles: str) -> Callable[[F], F]:
    """Decorate a view so that only callers with one of ``roles`` reach it (401, else 403).

    A network admin may do everything, so it is always admitted.
    """
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    admitted = [NETWORK_ADMIN, *[r for r in roles if r != NETWORK_ADMIN]]

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            caller = authenticate()
            if caller.role not in admitted:
                forbid(f"The role {caller.role} may not do this.")
            return view(*args, **kwargs)

        _document(wrapper, admitted, secured=True)
        return wrapper  # type: ignore[return-value]

    return decorate


def public(view: F) -> F:
    """Mark a view as open to anyone (a credential, if sent, may show more: see the view)."""
    _document(view, [PUBLIC], secured=False)
    return view


#: The view rule of the first API version: the admin key (now: any network admin).
admin_required = require(NETWORK_ADMIN)
