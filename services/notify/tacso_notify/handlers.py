"""What notify does with a message: plain functions, with the ledger, registry and SMTP injected."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tacso_notify.audience import AudienceUnavailable, Directory
from tacso_notify.ledger import DeliveryLedger
from tacso_notify.mailer import Mailer, PermanentSendError, TransientSendError
from tacso_notify.rendering import MessageKind, Sender, prepare_message
from tacso_shared.consumer import Handler, TransientError
from tacso_shared.envelope import Envelope

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Audience:
    """Which organisations a kind of mail goes to."""

    organisation_kind: str
    match_topics: bool


AUDIENCES: dict[MessageKind, Audience] = {
    # CSOs working on any of the event's topics (all CSOs when the event has none).
    MessageKind.INVITATION: Audience("cso", match_topics=True),
    # Every media outlet of the country, whatever the topics.
    MessageKind.PRESS_NOTICE: Audience("media", match_topics=False),
}


@dataclass
class FanOutResult:
    """What one fan-out pass did."""

    sent: int = 0
    failed: int = 0
    skipped: int = 0


@dataclass
class Dependencies:
    """What the handlers need from the outside world."""

    ledger: DeliveryLedger
    directory: Directory
    mailer: Mailer
    sender: Sender
    domain: str = "tacso.local"
    #: Sent deliveries are written to the ledger at least this often: the window in which a
    #: crash leaves mail sent but recorded as pending (and so sent again after a restart).
    flush_every: int = 50
    flush_seconds: float = 0.5
    log_every: int = field(default=1000)


def fan_out(event: Mapping[str, Any], kind: MessageKind, deps: Dependencies) -> FanOutResult:
    """Send one mail of ``kind`` to each organisation of the event's audience that has none yet."""
    audience = AUDIENCES[kind]
    topics = list(event["topics"]) if audience.match_topics else []
    prepared = prepare_message(event, kind, deps.sender, deps.domain)
    result = FanOutResult()
    for page in deps.directory.pages(event["country"], audience.organisation_kind, topics):
        owed = deps.ledger.claim(event, kind.value, page)
        result.skipped += len(page) - len(owed)
        sent: list[int] = []
        failed: list[tuple[int, str]] = []
        last_flush = time.monotonic()
        for delivery_id, recipient in owed:
            try:
                deps.mailer.send(
                    deps.sender.address, recipient.email, prepared.for_recipient(recipient)
                )
            except PermanentSendError as exc:
                failed.append((delivery_id, str(exc)))
            except TransientSendError as exc:
                deps.ledger.record(sent, failed, retrying=[(delivery_id, str(exc))])
                raise
            else:
                sent.append(delivery_id)
            if (
                len(sent) + len(failed) >= deps.flush_every
                or time.monotonic() - last_flush > deps.flush_seconds
            ):
                deps.ledger.record(sent, failed)
                result.sent += len(sent)
                result.failed += len(failed)
                sent, failed, last_flush = [], [], time.monotonic()
        deps.ledger.record(sent, failed)
        result.sent += len(sent)
        result.failed += len(failed)
    return result


def make_handler(kind: MessageKind, deps: Dependencies) -> Handler:
    """The consumer-facing handler: fan out, and turn passing failures into a retry."""

    def handle(envelope: Envelope, event: dict[str, Any]) -> None:
        try:
            result = fan_out(event, kind, deps)
        except (AudienceUnavailable, TransientSendError) as exc:
            raise TransientError(str(exc)) from exc
        log.info(
            "%s for event %s rev %s (%s): %d sent, %d failed, %d already done",
            kind.value,
            event["event_id"],
            event["revision"],
            envelope.id,
            result.sent,
            result.failed,
            result.skipped,
        )

    return handle
