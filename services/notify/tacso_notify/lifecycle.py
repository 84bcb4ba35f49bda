"""Update notices, cancellation notices and reminders: what notify does with an event's later life.

Who is told about an update or a cancellation of an event (issue 11):

- every organisation that was **sent an invitation** to it (the ledger knows) and has not
  declined or cancelled its registration (the registration mirror knows);
- every organisation whose registration is **confirmed, waitlisted or offered**, invited or not;
- the country's **media**, in their own wording (a press notice), as for the publication.

CSOs that become eligible through an update (topics widened, say) are *not* invited by it: an
update tells the people who already know about the event, nothing more.

The fan-out is the invitations' machinery: a chain of page tasks on the family's country queue
(``notify.updates.<country>``), one ledger row per recipient leased by one worker at a time, and
the per-recipient isolation of :func:`tacso_notify.handlers._job_for`. The chain first walks the
participants (notify's own tables, by organisation id, looked up in registry page by page), then
the media (registry's list). Its cursor says which: ``p:<id>`` then ``m:<id>``.

Several quick edits: the ledger key (event, revision, organisation, kind) gives at most one
notice per revision per recipient, and a page whose revision is no longer the newest seen of its
event is not sent: its deliveries are recorded ``superseded`` (the chain walks on, recording, so
the ledger accounts for everyone) and the newest revision's own message tells everyone.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime

from tacso_notify.audience import AudienceUnavailable
from tacso_notify.domain import MessageKind, Recipient
from tacso_notify.handlers import (
    PREPARED_CACHE_SIZE,
    Dependencies,
    FanOutResult,
    Interrupted,
    Rendered,
    SendingPaused,
    _outcome,
    _Progress,
    _send_page,
)
from tacso_notify.i18n import language_of
from tacso_notify.mirror import LifecycleStore
from tacso_notify.models import SKIPPED, SUPERSEDED
from tacso_notify.rendering import PreparedMessage, prepare_notice
from tacso_notify.tasks import PageTask
from tacso_shared import correlation, metrics
from tacso_shared.consumer import Handler, Requeue, TransientError
from tacso_shared.contracts import EventCancelled, EventUpdated, ReminderDue, load_data
from tacso_shared.envelope import Envelope, PoisonMessage, parse_envelope
from tacso_shared.messaging import PublishError

log = logging.getLogger(__name__)

#: Recipients per page of an update's fan-out (participants are looked up one by one).
PAGE_SIZE = 100
#: Cursor prefixes: the participants' part of the chain, then the media's.
_PARTICIPANTS, _MEDIA = "p:", "m:"

Notice = EventUpdated | EventCancelled
_KIND_OF: dict[type, MessageKind] = {
    EventUpdated: MessageKind.UPDATE,
    EventCancelled: MessageKind.CANCELLATION,
}


def _rendered(notice: Notice | ReminderDue, press: bool, deps: Dependencies) -> Rendered:
    """The notice in a recipient's language, rendered once per worker (see handlers._rendered)."""
    kind = _KIND_OF.get(type(notice), MessageKind.REMINDER)
    variant = f"{kind.value}:press" if press else kind.value

    def prepared(language: str) -> PreparedMessage:
        cid = correlation.current()
        key = (notice.event.event_id, notice.event.revision, variant, language_of(language), cid)
        message = deps.prepared.get(key)
        if message is None:
            message = prepare_notice(
                notice,
                deps.sender,
                deps.domain,
                key[3],
                cid,
                press=press,
                unsubscribe=deps.unsubscribe,
            )
            if len(deps.prepared) >= PREPARED_CACHE_SIZE:
                deps.prepared.pop(next(iter(deps.prepared)))
            deps.prepared[key] = message
        return message

    return prepared


def _participants(
    store: LifecycleStore, notice: Notice, after: str | None, deps: Dependencies
) -> tuple[list[Recipient], str]:
    """One page of the participants after ``after``, and the cursor of what comes next."""
    if deps.lookup is None:
        raise RuntimeError("update notices need deps.lookup")
    page, more = store.participants(notice.event.event_id, after, PAGE_SIZE)
    registered = {p.organisation_id for p in page if p.registered}
    found = deps.lookup.lookup([p.organisation_id for p in page])
    # Registrants are told whatever their mailing consent (they asked to come); an invitee who
    # has since withdrawn consent gets no more bulk mail.
    recipients = [
        o.recipient for o in found if o.mailing_consent or o.recipient.organisation_id in registered
    ]
    following = f"{_PARTICIPANTS}{page[-1].organisation_id}" if more and page else _MEDIA
    return recipients, following


def serve_notice_page(
    notice: Notice, task: PageTask, store: LifecycleStore, deps: Dependencies
) -> tuple[FanOutResult, PageTask | None]:
    """Send one page of an update or cancellation notice; return what it did and the next page.

    With ``deps.hand_on`` the next page is handed on *before* this one is sent (as invitations
    do) and ``None`` is returned; without it the caller serves the next page itself.
    Raises like :func:`tacso_notify.handlers.fan_out_page`.
    """
    event = notice.event
    kind = _KIND_OF[type(notice)]
    newest = store.newest(event.event_id)
    superseded_by = newest.revision if newest and newest.revision > event.revision else None
    after = task.after or _PARTICIPANTS
    press = after.startswith(_MEDIA)
    cursor = after[2:] or None
    following: str | None
    if press:
        page, next_media = deps.directory.page(event.country, "media", [], cursor, PAGE_SIZE)
        following = f"{_MEDIA}{next_media}" if next_media else None
    else:
        page, following = _participants(store, notice, cursor, deps)
    next_task = task.next(following) if following is not None else None
    if next_task is not None and deps.hand_on is not None:
        if deps.ledger.continuation_due(task.chain, following or ""):
            try:
                deps.hand_on(next_task)
            except PublishError as exc:
                raise SendingPaused(
                    f"could not hand the next page on: {exc}", progress=False
                ) from exc
            deps.ledger.continuation_done(task.chain, following or "")
        next_task = None
    if superseded_by is not None:
        # Outdated when its turn came: nobody on this page gets it; the ledger says why.
        reason = f"a newer revision of the event came first (revision {superseded_by})"
        recorded = store.record_superseded(event, kind.value, page, reason)
        log.info(
            "%s of event %s rev %s superseded by rev %s: %d not sent",
            kind.value,
            event.event_id,
            event.revision,
            superseded_by,
            recorded,
        )
        return FanOutResult(skipped=len(page)), next_task
    progress = _Progress(deps, str(uuid.uuid4()), kind.value, event.country, event.event_id)
    deps.pool.resume()
    try:
        held = _send_page(event, kind, page, _rendered(notice, press, deps), deps, progress)
    finally:
        progress.flush()
        deps.ledger.release(progress.token)
    return _outcome(progress, held, deps), next_task


def make_notice_handler(store: LifecycleStore, deps: Dependencies) -> Handler:
    """The handler of the ``updates`` family: ``event.updated``, ``event.cancelled`` and their
    page tasks."""

    def handle(envelope: Envelope, message: object) -> None:
        if isinstance(message, PageTask):
            task = message
            if task.kind not in (MessageKind.UPDATE.value, MessageKind.CANCELLATION.value):
                raise PoisonMessage(f"a {task.kind} page task on an updates queue")
            saved = store.notice(task.event_id, task.revision, task.kind)
            if saved is None:
                raise PoisonMessage(f"no {task.kind} of event {task.event_id} rev {task.revision}")
            notice = load_data(parse_envelope(saved.envelope))
            if not isinstance(notice, EventUpdated | EventCancelled):
                raise PoisonMessage(f"the saved {task.kind} of {task.event_id} is not a notice")
        elif isinstance(message, EventUpdated | EventCancelled):
            notice = message
            kind = _KIND_OF[type(notice)]
            store.see(notice.event, cancelled=isinstance(notice, EventCancelled))
            store.save_notice(
                notice.event.event_id, notice.event.revision, kind.value, envelope.to_json()
            )
            task = PageTask(
                event_id=notice.event.event_id,
                revision=notice.event.revision,
                kind=kind.value,
                country=notice.event.country,
                chain=f"{envelope.id}:{kind.value}",
            )
        else:
            raise PoisonMessage(f"{envelope.type} is not a message for the updates worker")
        started = time.perf_counter()
        total = FanOutResult()
        try:
            current: PageTask | None = task
            while current is not None:
                result, current = serve_notice_page(notice, current, store, deps)
                total.sent += result.sent
                total.failed += result.failed
                total.skipped += result.skipped
        except SendingPaused as exc:
            raise TransientError(str(exc), progress=exc.progress) from exc
        except AudienceUnavailable as exc:
            raise TransientError(str(exc)) from exc
        except Interrupted as exc:
            raise Requeue(str(exc)) from exc
        finally:
            metrics.FANOUT_DURATION.labels(task.kind).observe(time.perf_counter() - started)
        log.info(
            "%s for event %s rev %s page %d (%s): %d sent, %d failed, %d already done",
            task.kind,
            task.event_id,
            task.revision,
            task.number,
            envelope.id,
            total.sent,
            total.failed,
            total.skipped,
        )

    return handle


def send_reminder(
    reminder: ReminderDue, store: LifecycleStore, deps: Dependencies, now: datetime | None = None
) -> FanOutResult:
    """Send one reminder unless its moment has passed; the ledger says which and why.

    Not sent (``skipped``): the event has started (by the newest start notify knows), was
    cancelled, or the registration is no longer confirmed; (``superseded``): the reminder is of
    an older revision than the newest seen (the event moved: the scheduler sends the new one).
    Keyed by (event, revision, organisation, ``reminder``, offset): a redelivery sends nothing.
    """
    event = reminder.event
    kind = MessageKind.REMINDER
    now = now or datetime.now(UTC)
    store.see(event)
    newest = store.newest(event.event_id)
    state = store.registration(event.event_id, reminder.organisation_id)
    reason: str | None = None
    status = SKIPPED
    if newest is not None and newest.cancelled:
        reason = "the event was cancelled"
    elif newest is not None and newest.revision > event.revision:
        reason = f"the event changed since (revision {newest.revision})"
        status = SUPERSEDED
    elif (newest.starts_at if newest is not None else event.starts_at) <= now:
        reason = "the event had already started when the reminder was handled"
    elif state is not None and state.status != "confirmed":
        reason = f"the registration is {state.status}"
    if reason is not None:
        store.record_skipped(
            event,
            kind.value,
            reminder.organisation_id,
            "",
            reason,
            offset=reminder.offset,
            status=status,
        )
        log.info(
            "reminder %s of event %s for %s not sent: %s",
            reminder.offset,
            event.event_id,
            reminder.organisation_id,
            reason,
        )
        return FanOutResult(skipped=1)
    if deps.lookup is None:
        raise RuntimeError("reminders need deps.lookup")
    found = deps.lookup.lookup([reminder.organisation_id])
    if not found:
        store.record_skipped(
            event,
            kind.value,
            reminder.organisation_id,
            "",
            "the organisation is no longer in the registry",
            offset=reminder.offset,
        )
        return FanOutResult(skipped=1)
    progress = _Progress(deps, str(uuid.uuid4()), kind.value, event.country, event.event_id)
    deps.pool.resume()
    try:
        held = _send_page(
            event,
            kind,
            [found[0].recipient],
            _rendered(reminder, False, deps),
            deps,
            progress,
            offset=reminder.offset,
        )
    finally:
        progress.flush()
        deps.ledger.release(progress.token)
    return _outcome(progress, held, deps)


def make_reminder_handler(store: LifecycleStore, deps: Dependencies) -> Handler:
    """The handler of the ``reminders`` family: ``registration.reminder`` messages."""

    def handle(envelope: Envelope, message: object) -> None:
        if not isinstance(message, ReminderDue):
            raise PoisonMessage(f"{envelope.type} is not a message for the reminders worker")
        try:
            result = send_reminder(message, store, deps)
        except SendingPaused as exc:
            raise TransientError(str(exc), progress=exc.progress) from exc
        except AudienceUnavailable as exc:
            raise TransientError(str(exc)) from exc
        except Interrupted as exc:
            raise Requeue(str(exc)) from exc
        log.info(
            "reminder %s of event %s rev %s (%s): %d sent, %d failed, %d not sent",
            message.offset,
            message.event.event_id,
            message.event.revision,
            envelope.id,
            result.sent,
            result.failed,
            result.skipped,
        )

    return handle
