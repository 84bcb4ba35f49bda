"""The keys registry signs tokens with: create, rotate, retire, publish, and sign with them.

The newest key that is not retired signs; every key that is not retired is published in the JWK
set, so a token signed just before a rotation stays valid until it expires. Plain functions over
a database session (no Flask).
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from sqlalchemy.orm import Session

from tacso_registry.models import SigningKey
from tacso_shared.identity import ALGORITHM, ISSUER, Caller


class KeyNotFound(Exception):
    """No signing key has this id."""


class LastKey(Exception):
    """The key is the only one that signs: retiring it would stop every sign-in."""


def _new_key(now: datetime) -> SigningKey:
    private = Ed25519PrivateKey.generate()
    kid = f"{now:%Y%m%d}-{secrets.token_hex(4)}"
    public_jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(private.public_key()))
    public_jwk.update({"kid": kid, "use": "sig", "alg": ALGORITHM})
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return SigningKey(
        kid=kid, private_pem=pem, public_jwk=json.dumps(public_jwk), created_at=now, retired_at=None
    )


def active_keys(session: Session) -> Sequence[SigningKey]:
    """The keys not retired, newest first."""
    query = (
        sa.select(SigningKey)
        .where(SigningKey.retired_at.is_(None))
        .order_by(SigningKey.created_at.desc(), SigningKey.kid.desc())
    )
    return session.scalars(query).all()


def ensure_signing_key(session: Session) -> SigningKey:
    """The key that signs now, created if there is none."""
    keys = active_keys(session)
    if keys:
        return keys[0]
    key = _new_key(datetime.now(UTC))
    session.add(key)
    session.flush()
    return key


def rotate(session: Session) -> SigningKey:
    """Add a new key, which signs from now on; the older ones stay published until retired."""
    key = _new_key(datetime.now(UTC))
    newest = active_keys(session)
    if newest and newest[0].created_at >= key.created_at:
        # Same clock tick as the previous rotation: keep "newest signs" true.
        key.created_at = newest[0].created_at + timedelta(microseconds=1)
    session.add(key)
    session.flush()
    return key


def retire(session: Session, kid: str) -> SigningKey:
    """Stop publishing ``kid``: tokens it signed are refused from then on."""
    key = session.get(SigningKey, kid)
    if key is None:
        raise KeyNotFound(kid)
    keys = active_keys(session)
    if keys and keys[0].kid == kid:
        raise LastKey(kid)
    if key.retired_at is None:
        key.retired_at = datetime.now(UTC)
    return key


def jwks_document(session: Session) -> dict[str, Any]:
    """The JWK set of the published (not retired) keys."""
    return {"keys": [json.loads(k.public_jwk) for k in active_keys(session)]}


def issue_token(
    session: Session, caller: Caller, audiences: Sequence[str], ttl_seconds: int
) -> tuple[str, int]:
    """A signed token for ``caller``, valid for ``audiences``; and its lifetime in seconds."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        **caller.claims(),
        "iss": ISSUER,
        "aud": list(audiences),
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(seconds=ttl_seconds),
        "jti": str(uuid.uuid4()),
    }
    return sign(session, claims), ttl_seconds


def sign(session: Session, claims: dict[str, Any]) -> str:
    """``claims`` as a compact JWS signed by the current key (its ``kid`` in the header)."""
    key = ensure_signing_key(session)
    private = serialization.load_pem_private_key(key.private_pem.encode(), password=None)
    if not isinstance(private, Ed25519PrivateKey):  # pragma: no cover - we only store Ed25519
        raise TypeError(f"signing key {key.kid} is not Ed25519")
    return jwt.encode(claims, private, algorithm=ALGORITHM, headers={"kid": key.kid})


def verify(session: Session, token: str, audience: str) -> dict[str, Any]:
    """The claims of a token registry signed for ``audience``; ``jwt.PyJWTError`` if invalid.

    Reads the key from the database, for tokens only registry reads (invitations).
    """
    kid = jwt.get_unverified_header(token).get("kid")
    key = session.get(SigningKey, kid) if isinstance(kid, str) else None
    if key is None or key.retired_at is not None:
        raise jwt.InvalidKeyError("unknown signing key")
    public = jwt.PyJWK(json.loads(key.public_jwk), algorithm=ALGORITHM)
    claims: dict[str, Any] = jwt.decode(
        token,
        key=public,
        algorithms=[ALGORITHM],
        audience=audience,
        issuer=ISSUER,
        options={"require": ["exp", "sub", "aud", "iss"]},
    )
    return claims
