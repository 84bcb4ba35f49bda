"""How an organisation changes after it was registered: its profile, whether it is active, its
preferences, and its erasure. Plain functions over a session; each change writes its
``organisation.updated``/``organisation.erased`` message to the outbox in the same transaction.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tacso_registry import consent, preferences
from tacso_registry.models import (
    Account,
    ApiKey,
    Organisation,
    OrganisationTopic,
    PreferenceOptOut,
    audit_log,
    outbox,
)
from tacso_registry.operations import SOURCE, DuplicateEmail
from tacso_shared import outbox as outbox_ops
from tacso_shared.contracts import OrganisationErased, OrganisationUpdated, envelope_of

#: What an erased organisation is called; its address is ``erased-<id>@erased.invalid``
#: (``.invalid`` is reserved, RFC 2606: nothing can ever be delivered there).
ERASED_NAME = "Erased organisation"
ERASED_DOMAIN = "erased.invalid"
#: What replaces personal data in kept documents (audit entries, published messages).
REDACTED = "[erased]"
#: Fields of a profile a patch may change.
PATCHABLE = ("name", "email", "language", "topics", "contacts")


class OrganisationErasedAlready(Exception):
    """The organisation is a tombstone: it cannot change any more."""


def erased_address(organisation_id: str) -> str:
    """The placeholder address of an erased organisation (unique, never deliverable)."""
    return f"erased-{organisation_id}@{ERASED_DOMAIN}"


def organisation_updated(org: Organisation) -> OrganisationUpdated:
    """The ``organisation.updated`` message of an organisation as it is now."""
    return OrganisationUpdated(
        organisation_id=org.id,
        name=org.name,
        kind=org.kind,
        country=org.country,
        email=org.email,
        language=org.language,
        topics=tuple(org.topics),
        active=org.active,
        # The contract has no preferences: "may be mailed at all" is what a consumer can use.
        mailing_consent=org.mailing_consent and not org.opted_out_all,
    )


def publish_updated(session: Session, org: Organisation, correlation_id: str | None) -> None:
    """Put ``organisation.updated`` of ``org`` in the outbox (same transaction)."""
    envelope = envelope_of(organisation_updated(org), SOURCE, org.id, correlation_id)
    outbox_ops.enqueue(session, outbox, envelope)


def _refuse_erased(org: Organisation) -> None:
    if org.erased_at is not None:
        raise OrganisationErasedAlready(org.id)


def update_organisation(
    session: Session,
    org: Organisation,
    changes: dict[str, Any],
    correlation_id: str | None = None,
) -> bool:
    """Apply a merge patch (already validated) to ``org``; whether anything changed."""
    _refuse_erased(org)
    changed = False
    email = changes.get("email")
    if email is not None and email != org.email:
        taken = session.scalar(
            sa.select(Organisation.id).where(Organisation.email == email, Organisation.id != org.id)
        )
        if taken:
            raise DuplicateEmail(email)
    for name in ("name", "email", "language"):
        if name in changes and changes[name] != getattr(org, name):
            setattr(org, name, changes[name])
            changed = True
    if "contacts" in changes and changes["contacts"] != list(org.contacts or []):
        org.contacts = changes["contacts"]
        changed = True
    if "topics" in changes and changes["topics"] != org.topics:
        org.topic_links = [OrganisationTopic(topic=t) for t in changes["topics"]]
        changed = True
    if changed:
        org.updated_at = datetime.now(UTC)
        session.flush()
        publish_updated(session, org, correlation_id)
    return changed


def set_active(
    session: Session, org: Organisation, active: bool, correlation_id: str | None = None
) -> bool:
    """Activate or deactivate ``org`` (kept, but no mail while inactive); whether it changed."""
    _refuse_erased(org)
    if org.active == active:
        return False
    org.active = active
    org.updated_at = datetime.now(UTC)
    session.flush()
    publish_updated(session, org, correlation_id)
    return True


def set_preferences(
    session: Session,
    org: Organisation,
    wanted: preferences.Preferences,
    correlation_id: str | None = None,
) -> bool:
    """Store ``wanted`` as ``org``'s preferences and publish the change; whether it changed."""
    _refuse_erased(org)
    if not preferences.replace_preferences(session, org, wanted):
        return False
    org.updated_at = datetime.now(UTC)
    session.flush()
    publish_updated(session, org, correlation_id)
    return True


#: Keys of a profile document that hold personal data, whatever their value.
PERSONAL_KEYS = frozenset({"name", "email", "email_ascii", "contacts"})


def _redact(value: Any, secrets: tuple[str, ...], keys: frozenset[str] = frozenset()) -> Any:
    """``value`` (a JSON document) with every string that contains a secret replaced, and the
    values under ``keys`` replaced whatever they are."""
    if isinstance(value, str):
        lowered = value.lower()
        return REDACTED if any(s in lowered for s in secrets) else value
    if isinstance(value, list):
        return [_redact(item, secrets, keys) for item in value]
    if isinstance(value, dict):
        return {
            key: REDACTED if key in keys and item else _redact(item, secrets, keys)
            for key, item in value.items()
        }
    return value


def _personal_in(document: Any) -> set[str]:
    """The strings under personal keys of a profile document (earlier names and addresses)."""
    found: set[str] = set()
    if isinstance(document, dict):
        for key, item in document.items():
            if key in PERSONAL_KEYS and isinstance(item, str):
                found.add(item.lower())
            elif key in PERSONAL_KEYS or isinstance(item, dict | list):
                found |= _personal_in(item)
    elif isinstance(document, list):
        for item in document:
            if isinstance(item, str):
                found.add(item.lower())
            else:
                found |= _personal_in(item)
    return found


def _load(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return REDACTED


def _redact_text(
    text: str | None, secrets: tuple[str, ...], keys: frozenset[str] = frozenset()
) -> str | None:
    if text is None:
        return None
    document = _load(text)
    return json.dumps(_redact(document, secrets, keys), ensure_ascii=False, sort_keys=True)


def personal_values(org: Organisation) -> tuple[str, ...]:
    """The personal data of ``org`` as lower-case strings to look for in kept documents."""
    values = {org.email.lower(), org.name.lower()}
    for contact in org.contacts or []:
        values.update(str(v).lower() for v in contact.values() if v)
    return tuple(sorted(v for v in values if len(v) >= 3))


def erase_organisation(
    session: Session, org: Organisation, correlation_id: str | None = None
) -> OrganisationErased:
    """Remove the personal data of ``org`` everywhere in registry; keep a tombstone.

    The row stays (ids in events and notify keep their meaning) with a placeholder name and
    address; contacts go; consent records are kept, withdrawn, without who recorded them when
    that was a person's address; audit entries and kept outbox messages that mention its data are
    redacted; accounts of the organisation are disabled and anonymised, its API keys revoked.
    ``organisation.erased`` carries the old addresses so notify can redact its ledger.
    """
    _refuse_erased(org)
    # Earlier erasures' messages are out by now (usually): their addresses need not stay.
    redact_published_erasures(session)
    now = datetime.now(UTC)
    secrets = personal_values(org)
    emails = tuple(
        sorted(
            {org.email}
            | {str(c["email"]) for c in (org.contacts or []) if isinstance(c.get("email"), str)}
        )
    )
    consent.withdraw_consents(session, org, now)
    for record in consent.consents_of(session, org.id):
        if record.actor and "@" in record.actor:
            record.actor = REDACTED
    org.name = ERASED_NAME
    org.email = erased_address(org.id)
    org.contacts = []
    org.active = False
    org.opted_out_all = True
    org.erased_at = now
    org.updated_at = now
    session.execute(sa.delete(PreferenceOptOut).where(PreferenceOptOut.organisation_id == org.id))
    for account in session.scalars(sa.select(Account).where(Account.organisation_id == org.id)):
        secrets += (account.email.lower(), account.name.lower())
        account.email = erased_address(account.id)
        account.name = ERASED_NAME
        account.password_hash = None
        account.disabled = True
    session.execute(
        sa.update(ApiKey)
        .where(ApiKey.organisation_id == org.id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    _redact_kept_documents(session, org.id, tuple(s for s in secrets if len(s) >= 3))
    session.flush()
    message = OrganisationErased(organisation_id=org.id, country=org.country, emails=emails)
    # The message itself carries the addresses; once published, its stored copy is redacted.
    outbox_ops.enqueue(session, outbox, envelope_of(message, SOURCE, org.id, correlation_id))
    return message


def _redact_kept_documents(
    session: Session, organisation_id: str, secrets: tuple[str, ...]
) -> None:
    """Redact audit entries about the organisation (or naming its data) and its outbox copies."""
    own = session.execute(
        sa.select(audit_log.c.before, audit_log.c.after).where(
            audit_log.c.resource_type == "organisation",
            audit_log.c.resource_id == organisation_id,
        )
    ).all()
    earlier = {value for row in own for text in row for value in _personal_in(_load(text))}
    secrets = tuple(sorted(set(secrets) | {v for v in earlier if len(v) >= 3}))
    if not secrets:
        return
    mentions = sa.or_(
        *(
            sa.func.lower(column).contains(secret, autoescape=True)
            for secret in secrets
            for column in (audit_log.c.before, audit_log.c.after)
        )
    )
    entries = session.execute(
        sa.select(audit_log.c.id, audit_log.c.before, audit_log.c.after).where(
            sa.or_(audit_log.c.resource_id == organisation_id, mentions)
        )
    ).all()
    for entry_id, before, after in entries:
        session.execute(
            audit_log.update()
            .where(audit_log.c.id == entry_id)
            .values(
                before=_redact_text(before, secrets, PERSONAL_KEYS),
                after=_redact_text(after, secrets, PERSONAL_KEYS),
            )
        )
    rows = session.execute(
        # Pending ones too: what they would tell about the organisation is no longer true.
        sa.select(outbox.c.id, outbox.c.body).where(
            sa.or_(*(sa.func.lower(outbox.c.body).contains(s, autoescape=True) for s in secrets)),
        )
    ).all()
    for row_id, body in rows:
        session.execute(
            outbox.update().where(outbox.c.id == row_id).values(body=_redact_text(body, secrets))
        )


def redact_published_erasures(session: Session) -> int:
    """Redact the addresses in ``organisation.erased`` messages the relay has published."""
    rows = session.execute(
        sa.select(outbox.c.id, outbox.c.body).where(
            outbox.c.published_at.is_not(None),
            outbox.c.message_type.contains("organisation.erased", autoescape=True),
        )
    ).all()
    done = 0
    for row_id, body in rows:
        document = json.loads(body)
        if not document.get("data", {}).get("emails"):
            continue
        document["data"]["emails"] = []
        done += 1
        session.execute(
            outbox.update()
            .where(outbox.c.id == row_id)
            .values(body=json.dumps(document, separators=(",", ":"), ensure_ascii=False))
        )
    return done
