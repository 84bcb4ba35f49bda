"""Personal links in mail: signed, expiring tokens that say who may do what (itsdangerous).

A token carries a purpose (``rsvp``, ``claim``, ``unsubscribe``, ``preferences``...), the
organisation it was made for, usually an event, an expiry (an absolute time: an RSVP link expires
after the event ends, not N seconds after the mail left) and the recipient's language. Keys rotate:
``LINK_SIGNING_KEYS`` is a comma-separated list; the first signs, every one is accepted, so a new
key is put first and an old one dropped once the links it signed have expired.

The service that makes a link and the one that serves it share nothing but the keys.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from itsdangerous.encoding import base64_encode

#: A key for development and tests only: ``make up`` warns, the compose file requires a real one.
DEVELOPMENT_LINK_KEY = "development-link-key-change-me"
_SALT = "tacso.links.v1"


class BadLink(ValueError):
    """The token was tampered with, made for something else, or is not a token at all (400)."""


class ExpiredLink(ValueError):
    """The token is genuine but its time is over (410)."""

    def __init__(self, token: LinkToken) -> None:
        super().__init__("this link has expired")
        self.token = token


@dataclass(frozen=True)
class LinkToken:
    """What a personal link stands for."""

    purpose: str
    organisation_id: str
    expires_at: datetime
    event_id: str | None = None
    language: str | None = None
    #: Anything else the purpose needs (a registration id, an email address...).
    extra: Mapping[str, Any] = field(default_factory=dict)


def link_keys(env: Mapping[str, str]) -> tuple[str, ...]:
    """The keys in ``LINK_SIGNING_KEYS`` (first signs), or the development key."""
    raw = env.get("LINK_SIGNING_KEYS", "")
    keys = tuple(key.strip() for key in raw.split(",") if key.strip())
    return keys or (DEVELOPMENT_LINK_KEY,)


class LinkSigner:
    """Signs and checks personal link tokens with a list of keys (the first one signs)."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one link signing key is needed")
        # itsdangerous signs with the *last* key of the list and accepts every one.
        self._serializer = URLSafeSerializer(list(reversed(keys)), salt=_SALT)
        # Made once: a fan-out signs a token per recipient (see ``sign``).
        signer = self._serializer.make_signer(_SALT)
        if signer.digest_method().name != "sha1":  # pragma: no cover - itsdangerous default
            raise RuntimeError("itsdangerous no longer signs with SHA-1 by default")
        self._key = signer.derive_key()

    def sign(self, token: LinkToken) -> str:
        """The URL-safe token string of ``token``."""
        payload: dict[str, Any] = {
            "p": token.purpose,
            "o": token.organisation_id,
            "x": int(token.expires_at.timestamp()),
        }
        if token.event_id is not None:
            payload["e"] = token.event_id
        if token.language is not None:
            payload["l"] = token.language
        if token.extra:
            payload["d"] = dict(token.extra)
        # What URLSafeSerializer.dumps does (compact JSON, base64, "." and the HMAC-SHA1 of the
        # derived key), without its zlib attempt and per-call key derivation, which cost more
        # than the rest together: a fan-out signs one token per recipient. It loads the same.
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        value = base64_encode(text.encode("utf-8"))
        signature = base64_encode(hmac.digest(self._key, value, "sha1"))
        return (value + b"." + signature).decode("ascii")

    def load(self, raw: str, purposes: Sequence[str], now: datetime | None = None) -> LinkToken:
        """The token in ``raw`` if genuine and made for one of ``purposes``.

        :raises BadLink: tampered, malformed or made for another purpose;
        :raises ExpiredLink: genuine but past its expiry.
        """
        try:
            payload = self._serializer.loads(raw)
        except BadSignature as exc:
            raise BadLink("this link is not valid (it may have been cut or altered)") from exc
        try:
            token = LinkToken(
                purpose=str(payload["p"]),
                organisation_id=str(payload["o"]),
                expires_at=datetime.fromtimestamp(int(payload["x"]), UTC),
                event_id=None if payload.get("e") is None else str(payload["e"]),
                language=None if payload.get("l") is None else str(payload["l"]),
                extra=dict(payload.get("d") or {}),
            )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise BadLink("this link is not valid") from exc
        if token.purpose not in purposes:
            raise BadLink("this link was made for something else")
        if token.expires_at <= (now or datetime.now(UTC)):
            raise ExpiredLink(token)
        return token
