"""Self-registration with double opt-in: plain functions over a database session (no Flask).

A sign-up is stored as ``pending`` and a confirmation mail is asked of notify (through the
outbox, in the same transaction). Only the confirmation creates the organisation, with its
``organisation.registered`` message, so an unconfirmed sign-up is in no audience. An address that
already belongs to an organisation gets a different mail (no link) and the caller the same
answer: nobody learns from a sign-up whether an address is known. Unconfirmed sign-ups expire
after :data:`SIGNUP_DAYS` and are purged (``tacso-registry signups purge``, and lazily by every
new sign-up).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tacso_registry import operations
from tacso_registry.models import Organisation, Signup, outbox
from tacso_shared import outbox as outbox_ops
from tacso_shared.contracts import SignupConfirmationRequested, envelope_of
from tacso_shared.links import LinkSigner, LinkToken

#: How long a confirmation link, and the sign-up it confirms, lives.
SIGNUP_DAYS = 7
PURPOSE = "signup"
PENDING, CONFIRMED, IMPORTED = "pending", "confirmed", "imported"
#: The version of the consent text the sign-up page shows (change it with the text).
CONSENT_TEXT_VERSION = "signup-2026-11"
#: Self-registration can add these kinds only (RCs and offices are the admin's).
SIGNUP_KINDS = ("cso", "media")


class SignupGone(Exception):
    """The sign-up was purged, or confirmed already (the link was used)."""


@dataclass(frozen=True)
class Confirmation:
    """What confirming did: the organisation, and whether it was created just now."""

    organisation_id: str | None
    created: bool


def confirm_url(base_url: str, token: str) -> str:
    """The page a confirmation mail links to."""
    return f"{base_url.rstrip('/')}/signup/confirm/{token}"


def purge_expired(session: Session, now: datetime | None = None) -> int:
    """Delete unconfirmed sign-ups past their expiry; return how many."""
    now = now or datetime.now(UTC)
    result = session.execute(
        sa.delete(Signup).where(Signup.status == PENDING, Signup.expires_at <= now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def sign_up(
    session: Session,
    data: dict[str, Any],
    signer: LinkSigner,
    base_url: str,
    correlation_id: str | None = None,
) -> Signup | None:
    """Record a sign-up and ask for its confirmation mail; ``None`` if the address is known.

    A known address (an organisation has it) gets the "already registered" mail instead and no
    sign-up row. A second sign-up of an address still pending replaces the first (its link stops
    working: the mail carries the new one).
    """
    now = datetime.now(UTC)
    purge_expired(session, now)
    email = data["email"]
    expires = now + timedelta(days=SIGNUP_DAYS)
    known = session.scalar(sa.select(Organisation.id).where(Organisation.email == email))
    signup_id = str(uuid.uuid4())
    if known is not None:
        message = SignupConfirmationRequested(
            signup_id=signup_id,
            email=email,
            name=data["name"],
            language=data["language"],
            country=data["country"],
            expires_at=expires,
            already_registered=True,
        )
        outbox_ops.enqueue(
            session, outbox, envelope_of(message, operations.SOURCE, signup_id, correlation_id)
        )
        return None
    session.execute(sa.delete(Signup).where(Signup.email == email, Signup.status == PENDING))
    signup = Signup(
        id=signup_id,
        status=PENDING,
        email=email,
        name=data["name"],
        kind=data["kind"],
        country=data["country"],
        language=data["language"],
        topics=",".join(data.get("topics", [])),
        consent_basis="consent",
        consent_source="self_registration",
        consent_text_version=data["consent_text_version"],
        consented_at=None,
        organisation_id=None,
        created_at=now,
        expires_at=expires,
        confirmed_at=None,
    )
    session.add(signup)
    token = signer.sign(LinkToken(PURPOSE, signup_id, expires, language=data["language"]))
    message = SignupConfirmationRequested(
        signup_id=signup_id,
        email=email,
        name=data["name"],
        language=data["language"],
        country=data["country"],
        expires_at=expires,
        confirm_url=confirm_url(base_url, token),
    )
    outbox_ops.enqueue(
        session, outbox, envelope_of(message, operations.SOURCE, signup_id, correlation_id)
    )
    session.flush()
    return signup


def pending_signup(session: Session, token: LinkToken) -> Signup:
    """The pending sign-up a genuine token names; :class:`SignupGone` if used or purged."""
    signup = session.get(Signup, token.organisation_id)
    if signup is None or signup.status != PENDING:
        raise SignupGone(token.organisation_id)
    return signup


def confirm(session: Session, token: LinkToken, correlation_id: str | None = None) -> Confirmation:
    """Activate the sign-up ``token`` names: the organisation is created and announced.

    :raises SignupGone: the link was used already or the sign-up expired and was purged.
    """
    signup = session.get(Signup, token.organisation_id, with_for_update=True)
    if signup is None or signup.status != PENDING:
        raise SignupGone(token.organisation_id)
    now = datetime.now(UTC)
    signup.status = CONFIRMED
    signup.confirmed_at = signup.consented_at = now
    existing = session.scalar(sa.select(Organisation.id).where(Organisation.email == signup.email))
    if existing is not None:
        # Registered meanwhile (by an editor, or an import): nothing to create.
        signup.organisation_id = existing
        return Confirmation(existing, created=False)
    org = operations.register_organisation(
        session,
        {
            "name": signup.name,
            "kind": signup.kind,
            "country": signup.country,
            "email": signup.email,
            "language": signup.language,
            "topics": signup.topic_list,
            "consent": {
                "basis": "consent",
                "source": "self_registration",
                "text_version": signup.consent_text_version,
            },
        },
        correlation_id,
        actor="self-registration",
    )
    signup.organisation_id = org.id
    return Confirmation(org.id, created=True)
