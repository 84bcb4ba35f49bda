"""The audience preview: who would get an event's invitation and press notice, and who would not
and why, before anyone presses publish (no Flask here).

Served by notify because notify is what decides, at send time, who gets mail: registry's audience
(the same query as a fan-out's) minus notify's own suppression list. The event comes from events'
API, asked with the caller's own credential, so events' rules on drafts apply unchanged; the
organisations come from registry with notify's service credential.

Each organisation left out is counted once, under the first reason that applies, in the order of
:data:`REASONS`: no consent (registry's ``mailing_consent`` is false), opted out, suppressed
(its address is on notify's suppression list). "Opted out" is decided by registry, which owns the
preferences: an organisation of the plain list (country, kind, topics) that has consent and is
active but is missing from registry's audience query for this kind of mail (``mail_kind`` and
``event_topic``, the very read a fan-out makes) opted out of everything, of this kind of mail or
of the event's topics. Deactivated and erased organisations are in no audience and counted nowhere.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from tacso_notify.audience import (
    AudienceUnavailable,
    Directory,
    RegistryDirectory,
    organisations,
)
from tacso_notify.domain import AUDIENCES, MessageKind
from tacso_notify.models import Suppression

#: Why an organisation of the audience would get no mail, in the order they are checked.
NO_CONSENT, OPTED_OUT, SUPPRESSED = "no_consent", "opted_out", "suppressed"
REASONS = (NO_CONSENT, OPTED_OUT, SUPPRESSED)


class EventNotFound(Exception):
    """events has no such event, or the caller may not see it."""


def audience_ids(
    directory: Directory, country: str, kind: MessageKind, event_topics: Sequence[str]
) -> set[str]:
    """The ids of the organisations a fan-out of ``kind`` would write to now (before notify's
    suppressions): registry's audience query, asked exactly as :mod:`tacso_notify.handlers` asks
    it, so the preview and the send agree on who opted out."""
    rule = AUDIENCES[kind]
    pages = directory.pages(
        country,
        rule.organisation_kind,
        list(event_topics) if rule.match_topics else [],
        mail_kind=kind.value,
        event_topics=tuple(event_topics),
    )
    return {recipient.organisation_id for page in pages for recipient in page}


def _in_no_audience(organisation: dict[str, Any]) -> bool:
    """Deactivated or erased: registry gives it no mail of any kind, for any reason of its own."""
    return organisation.get("active", True) is False or bool(organisation.get("erased"))


@dataclass
class KindPreview:
    """One kind of mail's audience: who would get it, by language and topic; who would not."""

    kind: str
    organisation_kind: str
    recipients: int = 0
    by_language: dict[str, int] = field(default_factory=dict)
    by_topic: dict[str, int] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))

    @property
    def excluded_total(self) -> int:
        return sum(self.excluded.values())


@dataclass(frozen=True)
class AudiencePreview:
    """Both kinds of mail of one event, as they would go out now."""

    event_id: str
    status: str
    country: str
    topics: list[str]
    invitation: KindPreview
    press_notice: KindPreview


def _suppressed(sessions: sessionmaker[Session], emails: Iterable[str]) -> set[str]:
    """Which of ``emails`` are on the suppression list."""
    wanted = sorted({e.strip().lower() for e in emails})
    found: set[str] = set()
    with sessions() as session:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            found |= set(
                session.scalars(sa.select(Suppression.email).where(Suppression.email.in_(chunk)))
            )
    return found


def count_kind(
    kind: MessageKind,
    event_topics: Sequence[str],
    audience: list[dict[str, Any]],
    suppressed: set[str],
    opted_out_elsewhere: int = 0,
    wanted: Collection[str] | None = None,
) -> KindPreview:
    """Count one kind of mail's audience (organisations as registry shows them).

    ``wanted`` holds the ids registry's audience query returns (:func:`audience_ids`): a
    consenting organisation outside it opted out. ``None`` counts nobody as opted out;
    ``opted_out_elsewhere`` adds opt-outs counted by the caller.
    """
    rule = AUDIENCES[kind]
    preview = KindPreview(kind.value, rule.organisation_kind)
    preview.excluded[OPTED_OUT] += opted_out_elsewhere
    checks: tuple[tuple[str, Callable[[dict[str, Any]], bool]], ...] = (
        (NO_CONSENT, lambda o: not o.get("mailing_consent", True)),
        (OPTED_OUT, lambda o: wanted is not None and str(o.get("id")) not in wanted),
        (SUPPRESSED, lambda o: str(o.get("email", "")).strip().lower() in suppressed),
    )
    for organisation in audience:
        if _in_no_audience(organisation):
            continue
        reason = next((name for name, applies in checks if applies(organisation)), None)
        if reason is not None:
            preview.excluded[reason] += 1
            continue
        preview.recipients += 1
        language = str(organisation.get("language") or "en")
        preview.by_language[language] = preview.by_language.get(language, 0) + 1
        for topic in organisation.get("topics") or ():
            if topic in event_topics:
                preview.by_topic[topic] = preview.by_topic.get(topic, 0) + 1
    preview.by_language = dict(sorted(preview.by_language.items()))
    preview.by_topic = dict(sorted(preview.by_topic.items()))
    return preview


def fetch_event(
    events_url: str, event_id: str, authorization: str | None, timeout: float = 10.0
) -> dict[str, Any]:
    """The event from events' API, asked as the caller (its rules on drafts apply)."""
    headers = {"Authorization": authorization} if authorization else {}
    try:
        response = requests.get(
            f"{events_url.rstrip('/')}/api/v1/events/{quote(event_id, safe='')}",
            headers=headers,
            timeout=timeout,
        )
    except requests.RequestException as exc:
        raise AudienceUnavailable(f"events unreachable: {exc}") from exc
    if response.status_code == 404:
        raise EventNotFound(event_id)
    if response.status_code != 200:
        raise AudienceUnavailable(f"events answered {response.status_code}")
    try:
        event: dict[str, Any] = response.json()
        event["country"]
    except (ValueError, KeyError, TypeError) as exc:
        raise AudienceUnavailable(f"events answered 200 without an event: {exc}") from exc
    return event


def preview_audience(
    event: dict[str, Any], directory: RegistryDirectory, sessions: sessionmaker[Session]
) -> AudiencePreview:
    """Who would get this event's mail now; :class:`AudienceUnavailable` if registry is down."""
    country = str(event["country"])
    topics = [str(t) for t in event.get("topics") or ()]
    audiences: dict[MessageKind, list[dict[str, Any]]] = {}
    wanted: dict[MessageKind, set[str]] = {}
    for kind, rule in AUDIENCES.items():
        audiences[kind] = list(
            organisations(
                directory, country, rule.organisation_kind, topics if rule.match_topics else []
            )
        )
        wanted[kind] = audience_ids(directory, country, kind, topics)
    suppressed = _suppressed(
        sessions, (str(o.get("email", "")) for orgs in audiences.values() for o in orgs)
    )
    return AudiencePreview(
        event_id=str(event["id"]),
        status=str(event.get("status", "published")),
        country=country,
        topics=topics,
        invitation=count_kind(
            MessageKind.INVITATION,
            topics,
            audiences[MessageKind.INVITATION],
            suppressed,
            wanted=wanted[MessageKind.INVITATION],
        ),
        press_notice=count_kind(
            MessageKind.PRESS_NOTICE,
            topics,
            audiences[MessageKind.PRESS_NOTICE],
            suppressed,
            wanted=wanted[MessageKind.PRESS_NOTICE],
        ),
    )
