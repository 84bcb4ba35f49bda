"""What notify does with a message: plain functions, with the ledger, registry and SMTP injected."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tacso_notify.addressing import UnsendableAddress, smtp_address
from tacso_notify.audience import (
    DEFAULT_PAGE_SIZE,
    FIRST_PAGE_SIZE,
    AudienceUnavailable,
    Directory,
    OrganisationFinder,
    OrganisationLookup,
)
from tacso_notify.domain import AUDIENCES, MessageKind, Recipient, Sender
from tacso_notify.i18n import language_of
from tacso_notify.ledger import DeliveryLedger
from tacso_notify.prefetch import Page, PagePrefetcher
from tacso_notify.rendering import PreparedMessage, RsvpLinks, prepare_message
from tacso_notify.sending import FAILED, SENT, TRANSIENT, SenderPool, SendJob, SendResult
from tacso_notify.tasks import PageTask
from tacso_notify.unsubscribe import UnsubscribeLinks
from tacso_shared import correlation, metrics
from tacso_shared.consumer import Handler, Requeue, TransientError
from tacso_shared.contracts import EVENT_PUBLISHED, EventPublished, load_data
from tacso_shared.envelope import Envelope, PoisonMessage, parse_envelope
from tacso_shared.messaging import PublishError

log = logging.getLogger(__name__)

#: How many rendered messages a worker keeps (events it is serving at once, times languages).
PREPARED_CACHE_SIZE = 64

#: The rendered message of one event and kind in a recipient's language.
Rendered = Callable[[str], PreparedMessage]
#: (event id, revision, kind, language, correlation id) of a rendered message.
RenderKey = tuple[str, int, str, str, str | None]


class SendingPaused(Exception):
    """SMTP or registry failed for now; what was sent is recorded, the rest is still owed."""

    def __init__(self, reason: str, progress: bool) -> None:
        super().__init__(reason)
        self.progress = progress


class DeliveriesHeld(SendingPaused):
    """Some deliveries are leased by another worker (alive, or dead until its lease runs out)."""


class Interrupted(Exception):
    """The worker is shutting down; what was sent is recorded, the rest is still owed."""


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
    pool: SenderPool
    sender: Sender
    domain: str = "tacso.local"
    #: Sent deliveries are written to the ledger at least this often: the window in which a
    #: crash leaves mail sent but recorded as pending (and so sent again after a restart).
    flush_every: int = 50
    flush_seconds: float = 0.5
    #: How long a claimed delivery stays reserved for this worker without being renewed.
    lease_seconds: float = 60.0
    #: How long to keep retrying a failed ledger write of sent mail before giving up.
    record_patience: float = 60.0
    stopping: threading.Event = field(default_factory=threading.Event)
    #: Puts the task of a fan-out's next page on the queue (a worker's broker publisher). Without
    #: it (tests, tools) a handler serves the whole audience in one pass instead.
    hand_on: Callable[[PageTask], None] | None = None
    #: Messages rendered for recent (event, revision, kind): pages of one event reuse them.
    prepared: dict[RenderKey, PreparedMessage] = field(default_factory=dict)
    #: Looks organisations up by id (update, cancellation and reminder mail: their audience is
    #: known to notify by id). Only the workers of those kinds need it.
    lookup: OrganisationLookup | None = None
    #: Makes each recipient's personal RSVP link (invitations and registration mail); without it
    #: (tools, some tests) an invitation links to the event page only.
    links: RsvpLinks | None = None
    #: Finds one organisation (the registrant of registration mail).
    organisations: OrganisationFinder | None = None
    #: Makes each recipient's unsubscribe headers and preferences link (none: no such links).
    unsubscribe: UnsubscribeLinks | None = None
    #: Reads the next page of a fan-out while this one is sent (none: each page reads its own).
    prefetcher: PagePrefetcher | None = None


class _Progress:
    """Collects send results, counts them (``tacso_mails_total``) and writes them to the ledger
    in small batches."""

    def __init__(
        self, deps: Dependencies, token: str, kind: str, country: str, event_id: str
    ) -> None:
        self.deps = deps
        self.token = token
        #: How this fan-out's per-mail log lines start ("invitation of event <id>"; "... for
        #: event" is the page's summary line, which tests wait for).
        self.about = f"{kind} of event {event_id}"
        # The counters' children, looked up once per page rather than once per mail.
        self._counted = {
            outcome: metrics.MAILS.labels(kind, country, outcome)
            for outcome in ("sent", "failed", "suppressed")
        }
        self.result = FanOutResult()
        self.sent: list[int] = []
        self.failed: list[tuple[int, str]] = []
        self.retrying: list[tuple[int, str]] = []
        self.suppress: list[tuple[str, str]] = []
        self.transient_reason: str | None = None
        self.last_flush = self.last_renew = time.monotonic()

    def fail(self, delivery_id: int, reason: str, outcome: str = "failed") -> None:
        """A delivery failed before it reached SMTP (``suppressed``, or its copy not made)."""
        self.failed.append((delivery_id, reason))
        self._counted[outcome].inc()
        log.warning("%s: delivery %d %s: %s", self.about, delivery_id, outcome, reason)

    def add(self, result: SendResult, recipient: str) -> None:
        if result.outcome == SENT:
            self.sent.append(result.delivery_id)
            self._counted["sent"].inc()
        elif result.outcome == FAILED:
            self.failed.append((result.delivery_id, result.reason))
            self._counted["failed"].inc()
            log.warning("%s: delivery %d failed: %s", self.about, result.delivery_id, result.reason)
            if result.suppress:
                self.suppress.append((recipient, result.reason))
        elif result.outcome == TRANSIENT:
            self.retrying.append((result.delivery_id, result.reason))
            self.transient_reason = self.transient_reason or result.reason

    def maybe_flush(self) -> None:
        """Write to the ledger if the batch is full or old enough."""
        if len(self.sent) + len(self.failed) >= self.deps.flush_every or (
            time.monotonic() - self.last_flush > self.deps.flush_seconds
        ):
            self.flush()

    def flush(self) -> None:
        """Write what was sent and failed; keep trying while the database is away.

        Mail the SMTP server accepted must be recorded: giving up here would send it again.
        """
        if self.sent:
            # The SMTP acceptances of the batch, under the event's correlation id: the last step
            # of its trace. One line per batch (a line per mail was a tenth of the worker's
            # CPU); the delivery ids lead to the recipients in the ledger (no address here).
            ids = ", ".join(map(str, self.sent))
            log.info("%s: deliveries %s accepted by SMTP", self.about, ids)
        delay = 0.5
        deadline = time.monotonic() + self.deps.record_patience
        while True:
            try:
                self.deps.ledger.record(self.sent, self.failed, self.retrying)
                self.deps.ledger.suppress(self.suppress)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                log.warning("ledger write failed; retrying in %.1fs", delay, exc_info=True)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.result.sent += len(self.sent)
        self.result.failed += len(self.failed)
        self.sent, self.failed, self.retrying, self.suppress = [], [], [], []
        now = self.last_flush = time.monotonic()
        if now - self.last_renew > self.deps.lease_seconds / 3:
            self.deps.ledger.renew(self.token)
            self.last_renew = now


def _job_for(
    delivery_id: int, recipient: Recipient, prepared: Rendered, sender: Sender
) -> SendJob | str:
    """This recipient's copy, ready for the pool, or the reason there can be none.

    The isolation rule of the fan-out: whatever goes wrong while making one recipient's copy
    (their address, their name, a header that cannot be encoded) is that delivery's failure
    alone, recorded with the reason; it never stops the page, the event or the worker.
    """
    try:
        address = smtp_address(recipient.email)
        message = prepared(recipient.language).for_recipient(recipient, address)
    except Exception as exc:  # any cause here concerns this recipient only
        if not isinstance(exc, UnsendableAddress):
            log.warning("cannot render for %s", recipient.organisation_id, exc_info=True)
        return f"cannot be sent to this recipient: {exc}"[:500]
    return SendJob(delivery_id, sender.address, address.mailbox, message, address.smtputf8)


def _send_page(
    event: EventPublished,
    kind: MessageKind,
    page: list[Recipient],
    prepared: Rendered,
    deps: Dependencies,
    progress: _Progress,
    offset: str = "",
) -> int:
    """Send the page's owed mail through the pool; return how many another worker holds.

    ``offset``: a reminder's offset (part of its ledger key); empty for other kinds.
    """
    by_org = {r.organisation_id: r for r in page}
    claimed, held, suppressed = deps.ledger.ensure_and_claim(
        event, kind.value, page, progress.token, deps.lease_seconds, offset
    )
    progress.result.skipped += len(page) - len(claimed) - held
    addresses: dict[int, str] = {}
    outstanding = 0
    try:
        for delivery_id, organisation_id in claimed:
            recipient = by_org[organisation_id]
            if recipient.email in suppressed:
                reason = f"suppressed: {suppressed[recipient.email]}"
                progress.fail(delivery_id, reason, "suppressed")
                continue
            if deps.stopping.is_set() or deps.pool.halted:
                break
            job = _job_for(delivery_id, recipient, prepared, deps.sender)
            if isinstance(job, str):
                progress.fail(delivery_id, job)
                continue
            addresses[delivery_id] = recipient.email
            deps.pool.submit(job)
            outstanding += 1
            while (result := deps.pool.poll()) is not None:
                outstanding -= 1
                progress.add(result, addresses[result.delivery_id])
            progress.maybe_flush()
    except BaseException:
        deps.pool.halt()
        raise
    finally:
        if deps.stopping.is_set():
            deps.pool.halt()
        # Every job handed to the pool comes back, so no result leaks into the next fan-out
        # (collecting only: the ledger write comes after, where a failure cannot cut this short).
        while outstanding:
            result = deps.pool.poll(timeout=1.0)
            if result is not None:
                outstanding -= 1
                progress.add(result, addresses[result.delivery_id])
    progress.maybe_flush()
    return held


def _rendered(
    event: EventPublished,
    kind: MessageKind,
    deps: Dependencies,
    cache: dict[RenderKey, PreparedMessage],
) -> Rendered:
    """The message of ``kind`` for this event revision in a language, rendered once per worker.

    It carries the correlation id of the message being handled (an operator's re-send has its
    own), so that id is part of the key, with the language.
    """

    def prepared(language: str) -> PreparedMessage:
        cid = correlation.current()
        key = (event.event_id, event.revision, kind.value, language_of(language), cid)
        message = cache.get(key)
        if message is None:
            message = prepare_message(
                event,
                kind,
                deps.sender,
                deps.domain,
                key[3],
                cid,
                links=deps.links,
                unsubscribe=deps.unsubscribe,
            )
            if len(cache) >= PREPARED_CACHE_SIZE:
                cache.pop(next(iter(cache)))
            cache[key] = message
        return message

    return prepared


def _outcome(progress: _Progress, held: int, deps: Dependencies) -> FanOutResult:
    """What a pass did, or why it stopped short (everything it sent is recorded by now)."""
    if progress.transient_reason:
        raise SendingPaused(progress.transient_reason, progress=progress.result.sent > 0)
    if deps.stopping.is_set():
        raise Interrupted(f"shutting down after {progress.result.sent} sent")
    if held:
        message = f"{held} deliveries are held by another worker's lease"
        raise DeliveriesHeld(message, progress=progress.result.sent > 0)
    return progress.result


def fan_out_page(
    event: EventPublished, kind: MessageKind, task: PageTask, deps: Dependencies
) -> FanOutResult:
    """Send ``kind`` mail to one page of the event's audience, handing the next page on first.

    The next page's task goes to the queue *before* this page is sent, so another worker can
    take it meanwhile (one event shared by all workers) and so other events' messages queued
    behind it come first (fairness). Raises like :func:`fan_out`; a retried page does not hand on
    again (the ledger remembers the chain's continuations).
    """
    if deps.hand_on is None:
        raise RuntimeError("fan_out_page needs deps.hand_on")
    audience = AUDIENCES[kind]
    topics = list(event.topics) if audience.match_topics else []
    event_topics = tuple(event.topics or ())

    def read(directory: Directory, after: str | None, size: int) -> Page:
        return directory.page(
            event.country,
            audience.organisation_kind,
            topics,
            after,
            size,
            mail_kind=kind.value,
            event_topics=event_topics,
        )

    # Read from registry just before this page is sent (or while the page before it was being
    # sent, by this worker, a moment ago: prefetch.MAX_AGE at most): whoever opted out (or was
    # deactivated, or erased) by then is not on it. The guarantee is per page
    # (docs/architecture.md).
    prefetcher = deps.prefetcher
    ahead = prefetcher.take((task.chain, task.after or "")) if prefetcher is not None else None
    size = FIRST_PAGE_SIZE if task.number == 1 else DEFAULT_PAGE_SIZE
    page, next_after = ahead if ahead is not None else read(deps.directory, task.after, size)
    if next_after is not None and deps.ledger.continuation_due(task.chain, next_after):
        try:
            deps.hand_on(task.next(next_after))
        except PublishError as exc:
            raise SendingPaused(f"could not hand the next page on: {exc}", progress=False) from exc
        deps.ledger.continuation_done(task.chain, next_after)
        if prefetcher is not None:
            # Most often this worker takes that task itself, once this page is sent.
            after = next_after
            prefetcher.start(
                (task.chain, after), lambda directory: read(directory, after, DEFAULT_PAGE_SIZE)
            )
    prepared = _rendered(event, kind, deps, deps.prepared)
    progress = _Progress(
        deps, str(uuid.uuid4()), kind.value, str(event.country), str(event.event_id)
    )
    deps.pool.resume()
    try:
        held = _send_page(event, kind, page, prepared, deps, progress)
    finally:
        progress.flush()
        deps.ledger.release(progress.token)
    return _outcome(progress, held, deps)


def fan_out(event: EventPublished, kind: MessageKind, deps: Dependencies) -> FanOutResult:
    """Send one mail of ``kind`` to each organisation of the event's audience that has none yet.

    Raises :class:`SendingPaused` (SMTP said "not now"), :class:`AudienceUnavailable` (registry
    down), :class:`DeliveriesHeld` (another worker holds some) or :class:`Interrupted` (shutdown)
    after recording what was done: a later pass sends only what is still owed.
    """
    audience = AUDIENCES[kind]
    topics = list(event.topics) if audience.match_topics else []
    # A pass of its own renders afresh (an operator's re-send may follow a changed template).
    prepared = _rendered(event, kind, deps, {})
    progress = _Progress(
        deps, str(uuid.uuid4()), kind.value, str(event.country), str(event.event_id)
    )
    held = 0
    deps.pool.resume()
    try:
        pages = deps.directory.pages(
            event.country,
            audience.organisation_kind,
            topics,
            mail_kind=kind.value,
            event_topics=tuple(event.topics or ()),
        )
        for page in pages:
            held += _send_page(event, kind, page, prepared, deps, progress)
            if progress.transient_reason or deps.stopping.is_set():
                break
    except AudienceUnavailable as exc:
        raise SendingPaused(
            str(exc), progress=progress.result.sent + len(progress.sent) > 0
        ) from exc
    finally:
        # Whatever ended the pass (registry gone, shutdown, a bug), what was sent is recorded.
        progress.flush()
        deps.ledger.release(progress.token)
    return _outcome(progress, held, deps)


#: A made-up event, rendered once when a worker starts.
_SAMPLE_EVENT: dict[str, Any] = {
    "event_id": "00000000-0000-0000-0000-000000000000",
    "revision": 1,
    "title": "Warm-up",
    "description": None,
    "type": "workshop",
    "country": "BA",
    "topics": ["youth"],
    "starts_at": "2026-01-01T09:00:00+00:00",
    "ends_at": "2026-01-01T10:00:00+00:00",
    "venue": None,
    "online_url": "https://example.org/warm-up",
    "capacity": None,
    "organiser_id": "warm-up",
    "organiser_name": "Warm-up",
    "organiser_email": None,
    "url": "https://example.org/warm-up",
}


def warm_up(kind: MessageKind, deps: Dependencies) -> None:
    """Compile templates and the contract's validators before the first real message arrives.

    Otherwise the first event of a worker's life pays for them (hundreds of milliseconds) before
    its first invitation goes out.
    """
    envelope = Envelope(type=EVENT_PUBLISHED, source="/tacso/notify/warm-up", data=_SAMPLE_EVENT)
    event = load_data(envelope)
    prepared = prepare_message(
        event, kind, deps.sender, deps.domain, links=deps.links, unsubscribe=deps.unsubscribe
    )
    prepared.for_recipient(Recipient("warm-up", "Warm-up", "warm-up@example.org"))


def make_handler(kind: MessageKind, deps: Dependencies) -> Handler:
    """The consumer-facing handler: fan out; turn passing failures into a retry.

    It takes the event's ``event.published`` message (the first page of the fan-out, or the
    whole audience when ``deps.hand_on`` is not set) and notify's page tasks (a later page).
    """

    def handle(envelope: Envelope, message: object) -> None:
        if isinstance(message, PageTask):
            task = message
            if task.kind != kind.value:
                raise PoisonMessage(f"a {task.kind} page task on a {kind.value} queue")
            snapshot = deps.ledger.snapshot(task.event_id, task.revision)
            if snapshot is None:
                raise PoisonMessage(f"no snapshot of event {task.event_id} rev {task.revision}")
            event = load_data(parse_envelope(snapshot.envelope))
            if not isinstance(event, EventPublished):
                raise PoisonMessage(f"the snapshot of {task.event_id} is not an event")
        elif isinstance(message, EventPublished):
            event = message
            deps.ledger.save_snapshot(event.event_id, event.revision, envelope.to_json())
            task = PageTask(
                event_id=event.event_id,
                revision=event.revision,
                kind=kind.value,
                country=event.country,
                chain=f"{envelope.id}:{kind.value}",
            )
        else:
            raise PoisonMessage(f"{envelope.type} is not a message for the {kind.value} worker")
        started = time.perf_counter()
        try:
            if deps.hand_on is None:
                result = fan_out(event, kind, deps)
            else:
                result = fan_out_page(event, kind, task, deps)
        except SendingPaused as exc:
            raise TransientError(str(exc), progress=exc.progress) from exc
        except AudienceUnavailable as exc:  # before the first page: nothing was sent
            raise TransientError(str(exc)) from exc
        except Interrupted as exc:
            raise Requeue(str(exc)) from exc
        finally:
            metrics.FANOUT_DURATION.labels(kind.value).observe(time.perf_counter() - started)
        log.info(
            "%s for event %s rev %s page %d (%s): %d sent, %d failed, %d already done",
            kind.value,
            event.event_id,
            event.revision,
            task.number,
            envelope.id,
            result.sent,
            result.failed,
            result.skipped,
        )

    return handle
