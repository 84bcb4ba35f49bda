"""Mailing preferences an organisation sets for itself: everything, kinds of mail, topics.

Registry owns them; every change publishes ``organisation.updated`` (with the same transaction's
outbox), and notify's audience query (``mail_kind``) leaves out whoever opted out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tacso_registry.models import Organisation, PreferenceOptOut

#: The kinds of non-transactional mail an organisation may opt out of.
MAIL_KINDS = ("invitation", "press_notice", "reminder", "update")
KIND = "kind"
TOPIC = "topic"


@dataclass(frozen=True)
class Preferences:
    """What an organisation wants: ``all`` false opts out of every kind and topic at once."""

    all: bool = True
    kinds: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(MAIL_KINDS, True))
    topics_opted_out: list[str] = field(default_factory=list)


def preferences_of(session: Session, organisation: Organisation) -> Preferences:
    """The preferences of ``organisation``."""
    rows = session.execute(
        sa.select(PreferenceOptOut.category, PreferenceOptOut.value).where(
            PreferenceOptOut.organisation_id == organisation.id
        )
    ).all()
    kinds_out = {value for category, value in rows if category == KIND}
    return Preferences(
        all=not organisation.opted_out_all,
        kinds={kind: kind not in kinds_out for kind in MAIL_KINDS},
        topics_opted_out=sorted(value for category, value in rows if category == TOPIC),
    )


def replace_preferences(
    session: Session, organisation: Organisation, preferences: Preferences
) -> bool:
    """Store ``preferences`` for ``organisation``; whether anything changed."""
    if preferences == preferences_of(session, organisation):
        return False
    organisation.opted_out_all = not preferences.all
    session.execute(
        sa.delete(PreferenceOptOut).where(PreferenceOptOut.organisation_id == organisation.id)
    )
    rows = [(KIND, kind) for kind, wanted in sorted(preferences.kinds.items()) if not wanted]
    rows += [(TOPIC, topic) for topic in sorted(set(preferences.topics_opted_out))]
    for category, value in rows:
        session.add(
            PreferenceOptOut(organisation_id=organisation.id, category=category, value=value)
        )
    session.flush()
    return True


def opted_out_of_everything(preferences: Preferences) -> Preferences:
    """``preferences`` with everything turned off (one-click unsubscribe): kinds and topics kept."""
    return Preferences(False, dict(preferences.kinds), list(preferences.topics_opted_out))
