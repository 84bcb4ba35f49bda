"""What the registry does, as plain functions over a database session (no Flask, no kombu)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tacso_registry import consent
from tacso_registry.models import Organisation, OrganisationTopic, PreferenceOptOut, outbox
from tacso_shared import outbox as outbox_ops
from tacso_shared.contracts import OrganisationRegistered, envelope_of

SOURCE = "/tacso/registry"


class DuplicateEmail(Exception):
    """Another organisation already uses this email address."""


@dataclass(frozen=True)
class OrganisationFilter:
    """Which organisations a list returns."""

    country: str | None = None
    kind: str | None = None
    topics: tuple[str, ...] = ()
    mailing_consent: bool | None = None
    #: An audience query: only active organisations with consent that have not opted out of
    #: everything, of this kind of mail, or of the topics (``topics``/``event_topics``).
    mail_kind: str | None = None
    #: The event's topics: an organisation that opted out of every one of them is left out.
    event_topics: tuple[str, ...] = ()
    #: Only these countries (the caller's scope); empty for all.
    countries: tuple[str, ...] = ()


@dataclass(frozen=True)
class OrganisationPage:
    """One page of a filtered list, plus what the client needs to ask for the next one."""

    items: list[Organisation]
    page: int
    page_size: int
    #: ``None`` on keyset pages: counting the whole audience for every page would make walking
    #: it quadratic.
    total: int | None
    next_after: str | None


def organisation_id_for(email: str) -> str:
    """A stable id derived from the email (so seeding twice yields the same ids)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mailto:{email.lower()}"))


def register_organisation(
    session: Session,
    data: dict[str, Any],
    correlation_id: str | None = None,
    actor: str | None = None,
) -> Organisation:
    """Add an organisation and, in the same transaction, its ``organisation.registered`` message.

    Its consent record says what the client gave (``data["consent"]``); without one an
    organisation with ``mailing_consent`` is recorded as ``legitimate_interest`` from ``api``,
    recorded by ``actor`` (the caller).
    """
    email = data["email"]
    if session.scalar(sa.select(Organisation.id).where(Organisation.email == email)):
        raise DuplicateEmail(email)
    now = datetime.now(UTC)
    org = Organisation(
        id=str(uuid.uuid4()),
        name=data["name"],
        kind=data["kind"],
        country=data["country"],
        email=email,
        language=data["language"],
        mailing_consent=False,
        active=True,
        contacts=data.get("contacts") or [],
        opted_out_all=False,
        created_at=now,
        updated_at=now,
        topic_links=[OrganisationTopic(topic=t) for t in data.get("topics", [])],
    )
    if "id" in data:
        org.id = data["id"]
    session.add(org)
    session.flush()
    given = data.get("consent")
    if given is not None:
        consent.record_consent(
            session,
            org,
            given["basis"],
            given.get("source", "api"),
            actor,
            given.get("text_version"),
            now,
        )
    elif data.get("mailing_consent", True):
        consent.record_consent(session, org, "legitimate_interest", "api", actor, None, now)
    session.flush()
    outbox_ops.enqueue(
        session,
        outbox,
        envelope_of(organisation_registered(org), SOURCE, org.id, correlation_id),
    )
    return org


def organisation_registered(org: Organisation) -> OrganisationRegistered:
    """The ``organisation.registered`` message of an organisation."""
    return OrganisationRegistered(
        organisation_id=org.id,
        name=org.name,
        kind=org.kind,
        country=org.country,
        email=org.email,
        language=org.language,
        topics=tuple(org.topics),
    )


def get_organisation(session: Session, organisation_id: str) -> Organisation | None:
    """The organisation with this id, if any."""
    return session.get(Organisation, organisation_id)


def list_organisations(
    session: Session,
    flt: OrganisationFilter,
    page: int = 1,
    page_size: int = 50,
    after: str | None = None,
) -> OrganisationPage:
    """Organisations matching ``flt`` by id; offset paging, or keyset paging with ``after``."""
    query = sa.select(Organisation)
    if flt.country:
        query = query.where(Organisation.country == flt.country)
    if flt.countries:
        query = query.where(Organisation.country.in_(flt.countries))
    if flt.kind:
        query = query.where(Organisation.kind == flt.kind)
    if flt.mailing_consent is not None:
        query = query.where(Organisation.mailing_consent == flt.mailing_consent)
    if flt.mail_kind is not None:
        query = query.where(
            Organisation.active.is_(True),
            Organisation.erased_at.is_(None),
            Organisation.mailing_consent.is_(True),
            Organisation.opted_out_all.is_(False),
            ~sa.exists().where(
                PreferenceOptOut.organisation_id == Organisation.id,
                PreferenceOptOut.category == "kind",
                PreferenceOptOut.value == flt.mail_kind,
            ),
        )
        if flt.event_topics:
            topics_out = (
                sa.select(sa.func.count())
                .where(
                    PreferenceOptOut.organisation_id == Organisation.id,
                    PreferenceOptOut.category == "topic",
                    PreferenceOptOut.value.in_(flt.event_topics),
                )
                .scalar_subquery()
            )
            query = query.where(topics_out < len(set(flt.event_topics)))
    if flt.topics:
        topic_match = [
            OrganisationTopic.organisation_id == Organisation.id,
            OrganisationTopic.topic.in_(flt.topics),
        ]
        if flt.mail_kind is not None:
            # A matching topic counts only if the organisation did not opt out of it.
            topic_match.append(
                ~sa.exists().where(
                    PreferenceOptOut.organisation_id == OrganisationTopic.organisation_id,
                    PreferenceOptOut.category == "topic",
                    PreferenceOptOut.value == OrganisationTopic.topic,
                )
            )
        if after is not None:
            # Said on the topic side too, so the (topic, organisation_id) index starts there
            # instead of at the topic's first row on every page.
            topic_match.append(OrganisationTopic.organisation_id > after)
        query = query.where(sa.exists().where(*topic_match))
    total: int | None = None
    if after is None:
        total = session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0
        query = query.offset((page - 1) * page_size)
    else:
        query = query.where(Organisation.id > after)
    query = query.order_by(Organisation.id).limit(page_size)
    items = list(session.scalars(query))
    next_after = items[-1].id if len(items) == page_size else None
    return OrganisationPage(items, page, page_size, total, next_after)
