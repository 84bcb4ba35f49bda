"""Mail about one registration's status change: to the registrant, once per change.

Events publishes ``registration.<status>.<country>`` when a registration is confirmed,
waitlisted, offered a seat, lets an offer expire, is cancelled or declined; notify's
``registrations`` worker sends the registrant (the organisation, read from registry by id) one
mail per (event, registration, sequence), recorded in the ledger under its own kind. ``declined``
gets a short acknowledgement (so the person who clicked "I can't attend" knows it worked and
where to change the answer). The isolation rules are the fan-out's (``_job_for``, ``_outcome``):
whatever concerns the recipient fails that delivery alone; SMTP or registry away retries later.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from tacso_notify.audience import AudienceUnavailable
from tacso_notify.domain import REGISTRATION_KINDS, MessageKind, Recipient
from tacso_notify.handlers import (
    DeliveriesHeld,
    Dependencies,
    FanOutResult,
    Interrupted,
    SendingPaused,
    _job_for,
    _outcome,
    _Progress,
)
from tacso_notify.mirror import record_registration
from tacso_notify.models import FAILED, SENT
from tacso_notify.rendering import PreparedMessage, prepare_registration_message
from tacso_shared import correlation, metrics
from tacso_shared.consumer import Handler, Requeue, TransientError
from tacso_shared.contracts import REGISTRATION_CHANGED_V1, RegistrationChanged, load_data
from tacso_shared.envelope import Envelope, PoisonMessage
from tacso_shared.vocabulary import COUNTRIES

log = logging.getLogger(__name__)


def record_registration_state(session: Session, change: RegistrationChanged) -> None:
    """What notify keeps about a registration besides its mail (in the ledger's transaction).

    Runs for every status change received, redeliveries included, before any mail is sent.
    """
    # The mirror of registration states: who to tell when the event changes (issue 11).
    record_registration(session, change)


def send_registration_mail(change: RegistrationChanged, deps: Dependencies) -> FanOutResult:
    """Send the registrant the mail of ``change``'s status, unless it was sent (or failed) already.

    Raises like :func:`tacso_notify.handlers.fan_out`: :class:`SendingPaused` (SMTP "not now"),
    :class:`AudienceUnavailable` (registry down), :class:`DeliveriesHeld` (another worker is
    sending it) or :class:`Interrupted` (shutdown), after recording what was done.
    """
    kind = REGISTRATION_KINDS[change.status]
    done = deps.ledger.registration_mail_status(
        change, kind.value, also=lambda session: record_registration_state(session, change)
    )
    if done in (SENT, FAILED):
        # A redelivered message: its mail is accounted for; registry need not be asked.
        return FanOutResult(skipped=1)
    if deps.organisations is None:
        raise RuntimeError("registration mail needs deps.organisations")
    found = deps.organisations.organisation(change.organisation_id)
    recipient = found or Recipient(change.organisation_id, "", "", "en")
    token = str(uuid.uuid4())
    delivery_id, held = deps.ledger.claim_registration_mail(
        change, kind.value, recipient, token, deps.lease_seconds
    )
    if delivery_id is None:
        if held:
            raise DeliveriesHeld("the delivery is held by another worker's lease", progress=False)
        return FanOutResult(skipped=1)
    progress = _Progress(deps, token, kind.value, change.event.country, change.event.event_id)
    deps.pool.resume()
    try:
        if found is None:
            progress.fail(
                delivery_id, f"organisation {change.organisation_id} is not in the registry"
            )
        else:
            _send_one(change, kind, recipient, delivery_id, deps, progress)
    finally:
        progress.flush()
        deps.ledger.release(token)
    return _outcome(progress, 0, deps)


def _send_one(
    change: RegistrationChanged,
    kind: MessageKind,
    recipient: Recipient,
    delivery_id: int,
    deps: Dependencies,
    progress: _Progress,
) -> None:
    """Hand the recipient's copy to the pool and record what became of it."""
    country = COUNTRIES.get(recipient.country or "") or COUNTRIES[change.event.country]

    def prepared(language: str) -> PreparedMessage:
        return prepare_registration_message(
            change,
            kind,
            deps.sender,
            deps.domain,
            language,
            correlation.current(),
            links=deps.links,
            timezone=country.timezone,
        )

    job = _job_for(delivery_id, recipient, prepared, deps.sender)
    if isinstance(job, str):
        progress.fail(delivery_id, job)
        return
    deps.pool.submit(job)
    while (result := deps.pool.poll(timeout=1.0)) is None:
        pass  # every job handed to the pool comes back (sent, failed, transient or skipped)
    progress.add(result, recipient.email)


#: A made-up registration, rendered once when a worker starts.
_SAMPLE_EVENT: dict[str, Any] = {
    "event_id": "00000000-0000-0000-0000-000000000000",
    "revision": 1,
    "title": "Warm-up",
    "type": "workshop",
    "country": "BA",
    "topics": [],
    "starts_at": "2026-01-01T09:00:00+00:00",
    "ends_at": "2026-01-01T10:00:00+00:00",
    "online_url": "https://example.org/warm-up",
    "organiser_id": "warm-up",
    "organiser_name": "Warm-up",
    "url": "https://example.org/warm-up",
}


def warm_up_registrations(deps: Dependencies) -> None:
    """Compile the registration templates and the contract before the first real message."""
    data = {
        "registration_id": "warm-up",
        "organisation_id": "warm-up",
        "status": "confirmed",
        "seats": 1,
        "sequence": 1,
        "changed_at": datetime.now(UTC).isoformat(),
        "event": _SAMPLE_EVENT,
    }
    envelope = Envelope(
        type=REGISTRATION_CHANGED_V1["confirmed"].type, source="/tacso/notify/warm-up", data=data
    )
    change = load_data(envelope)
    prepared = prepare_registration_message(
        change, MessageKind.REGISTRATION_CONFIRMED, deps.sender, deps.domain, links=deps.links
    )
    prepared.for_recipient(Recipient("warm-up", "Warm-up", "warm-up@example.org"))


def make_registration_handler(deps: Dependencies) -> Handler:
    """The registrations worker's handler: send the mail; turn passing failures into a retry."""

    def handle(envelope: Envelope, message: object) -> None:
        if not isinstance(message, RegistrationChanged):
            raise PoisonMessage(f"{envelope.type} is not a message for the registrations worker")
        kind = REGISTRATION_KINDS[message.status]
        started = time.perf_counter()
        try:
            result = send_registration_mail(message, deps)
        except SendingPaused as exc:
            raise TransientError(str(exc), progress=exc.progress) from exc
        except AudienceUnavailable as exc:
            raise TransientError(str(exc)) from exc
        except Interrupted as exc:
            raise Requeue(str(exc)) from exc
        finally:
            metrics.FANOUT_DURATION.labels(kind.value).observe(time.perf_counter() - started)
        log.info(
            "%s for event %s registration %s change %d (%s): %d sent, %d failed, %d already done",
            kind.value,
            message.event.event_id,
            message.registration_id,
            message.sequence,
            envelope.id,
            result.sent,
            result.failed,
            result.skipped,
        )

    return handle
