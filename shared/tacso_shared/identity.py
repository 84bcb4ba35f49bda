"""Who is calling: roles, the caller a credential stands for, and local verification of tokens.

Registry issues short-lived EdDSA-signed JWTs and publishes its public keys as a JWK set
(``/.well-known/jwks.json``). Every service verifies a token on its own against a cached copy of
that set (:class:`KeySet`): no call to registry per request, and an unknown ``kid`` (a key added
by a rotation) makes it fetch the set again. Nothing here knows about Flask.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import requests

from tacso_shared.vocabulary import COUNTRIES

log = logging.getLogger(__name__)

NETWORK_ADMIN = "network_admin"
COUNTRY_EDITOR = "country_editor"
ORGANISATION_MEMBER = "organisation_member"
SERVICE = "service"
#: Every role, most powerful first.
ROLES = (NETWORK_ADMIN, COUNTRY_EDITOR, ORGANISATION_MEMBER, SERVICE)

#: The only signing algorithm accepted (never taken from the token itself).
ALGORITHM = "EdDSA"
#: Who signs the tokens (the ``iss`` claim).
ISSUER = "tacso-registry"
#: Seconds of clock difference between hosts tolerated on ``exp``, ``iat`` and ``nbf``.
LEEWAY_SECONDS = 30


def audience_of(service: str) -> str:
    """The ``aud`` value a token must carry to be accepted by ``service``."""
    return f"tacso-{service}"


#: The audiences a token gets unless the client asks for fewer.
ALL_AUDIENCES = tuple(audience_of(s) for s in ("registry", "events", "notify"))


class InvalidCredential(Exception):
    """A credential was presented but is not valid (unknown, expired, revoked, forged)."""


@dataclass(frozen=True)
class Caller:
    """Who a request acts for, whichever credential proved it."""

    subject: str
    role: str
    organisation_id: str | None
    #: The countries the caller acts in: every country for a network admin.
    countries: tuple[str, ...]
    #: How the caller proved it: ``token``, ``api_key`` or ``admin_key``.
    via: str

    @property
    def is_network_admin(self) -> bool:
        """True for the TACSO regional office (and the admin key)."""
        return self.role == NETWORK_ADMIN

    def covers(self, country: str) -> bool:
        """True if the caller acts in ``country``."""
        return self.is_network_admin or country in self.countries

    def claims(self) -> dict[str, Any]:
        """The identity claims of a token for this caller."""
        return {
            "sub": self.subject,
            "role": self.role,
            "org": self.organisation_id,
            "countries": list(self.countries),
        }


#: The caller of the legacy ``ADMIN_API_KEY``: a network admin, so existing clients keep working.
ADMIN_KEY_CALLER = Caller(
    subject="admin-api-key",
    role=NETWORK_ADMIN,
    organisation_id=None,
    countries=tuple(COUNTRIES),
    via="admin_key",
)


def countries_for(role: str, organisation_country: str | None) -> tuple[str, ...]:
    """The countries a caller of ``role`` whose organisation is in ``organisation_country`` acts
    in."""
    if role == NETWORK_ADMIN:
        return tuple(COUNTRIES)
    return (organisation_country,) if organisation_country else ()


def looks_like_jwt(credential: str) -> bool:
    """True if ``credential`` has the shape of a compact JWS (three dot-separated parts)."""
    return credential.count(".") == 2


class KeySet:
    """Public signing keys by ``kid``, fetched from a JWK set and kept for ``ttl`` seconds.

    An unknown ``kid`` makes it fetch again (a rotation added a key): once per ``kid`` per
    ``min_refresh_interval``, and at most :data:`MAX_REFRESHES` times in that interval in all, so
    that tokens with made-up ids cannot hammer the issuer. When a fetch fails the keys already
    known stay in use: tokens keep being verified while registry is down.
    """

    #: Fetches allowed per ``min_refresh_interval``, whatever the ids asked for.
    MAX_REFRESHES = 5

    def __init__(
        self,
        fetch: Callable[[], Mapping[str, Any]],
        ttl: float = 300.0,
        min_refresh_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._min_refresh_interval = min_refresh_interval
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        #: When each unknown id last made us fetch; when the recent fetches were.
        self._missed: dict[str, float] = {}
        self._recent: list[float] = []
        self._lock = threading.Lock()

    def key(self, kid: str) -> jwt.PyJWK | None:
        """The public key with this id, refreshing the set first if needed."""
        with self._lock:
            now = self._clock()
            window = self._min_refresh_interval
            self._recent = [t for t in self._recent if now - t < window]
            stale = self._fetched_at is None or now - self._fetched_at >= self._ttl
            unknown = kid not in self._keys
            asked_lately = unknown and now - self._missed.get(kid, -window) < window
            if (stale or unknown) and not asked_lately and len(self._recent) < self.MAX_REFRESHES:
                self._recent.append(now)
                if unknown:
                    if len(self._missed) > 1000:
                        self._missed.clear()
                    self._missed[kid] = now
                self._refresh(now)
            return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        try:
            document = self._fetch()
            keys = {}
            for entry in document.get("keys", []):
                if entry.get("kid") and entry.get("use", "sig") == "sig":
                    keys[str(entry["kid"])] = jwt.PyJWK(dict(entry), algorithm=ALGORITHM)
        except Exception as exc:  # noqa: BLE001 - any failure: keep the keys known so far
            # The issuer is down or answered nonsense: go on with the keys known so far.
            log.warning("could not refresh the signing keys: %s", exc)
            return
        self._keys = keys
        self._fetched_at = now

    def kids(self) -> list[str]:
        """The ids of the keys known now (for tests and operators)."""
        with self._lock:
            return sorted(self._keys)


def http_jwks(url: str, timeout: tuple[float, float] = (2.0, 5.0)) -> Callable[[], dict[str, Any]]:
    """A fetch function for :class:`KeySet` that reads the JWK set at ``url``."""
    session = requests.Session()

    def fetch() -> dict[str, Any]:
        response = session.get(url, timeout=timeout)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    return fetch


class TokenVerifier:
    """Checks registry's tokens for one audience against a :class:`KeySet`."""

    def __init__(self, keys: KeySet, audience: str, issuer: str = ISSUER) -> None:
        self.keys = keys
        self.audience = audience
        self.issuer = issuer

    def verify(self, token: str) -> Caller:
        """The caller the token stands for; :class:`InvalidCredential` if it is not valid here."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidCredential("the token cannot be read") from exc
        kid = header.get("kid")
        if not isinstance(kid, str) or header.get("alg") != ALGORITHM:
            raise InvalidCredential("the token names no key or another algorithm")
        key = self.keys.key(kid)
        if key is None:
            raise InvalidCredential("the token was signed by an unknown key")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidCredential(f"the token is not valid: {exc}") from exc
        role = claims.get("role")
        countries = claims.get("countries") or []
        if role not in ROLES or not isinstance(countries, list):
            raise InvalidCredential("the token carries no known role")
        organisation = claims.get("org")
        return Caller(
            subject=str(claims["sub"]),
            role=str(role),
            organisation_id=None if organisation is None else str(organisation),
            countries=tuple(str(c) for c in countries),
            via="token",
        )
