"""notify's own message: one page of a fan-out, as a task any worker of the kind can take.

A published event does not occupy one worker until its whole audience is served. The worker that
takes ``event.published`` sends the first page and, before sending, puts the task of the next
page at the back of the same country queue; whoever is free takes it. So one event is shared by
every worker of its kind, and a three-recipient event in one country never waits for a
fifty-thousand-recipient one in another: between two pages of the big one, the small one's
message is next in line. The task never leaves notify: its contract lives here, not in shared.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate

from tacso_shared.contracts import load_data
from tacso_shared.envelope import Envelope, PoisonMessage
from tacso_shared.messaging import OutgoingMessage
from tacso_shared.vocabulary import COUNTRIES

FANOUT_PAGE = "org.tacso.notify.fanout.page.v1"
SOURCE = "/tacso/notify"


@dataclass(frozen=True)
class PageTask:
    """Send ``kind`` mail about one event revision to the audience page after ``after``."""

    event_id: str
    revision: int
    kind: str
    country: str
    #: Which fan-out this page belongs to: the starting message's id and the kind. A retried
    #: page does not hand on a second time within one chain; an operator's re-send starts anew.
    chain: str
    #: Keyset cursor: the page starts after this organisation id (None: the first page).
    after: str | None = None
    #: 1 for the first page (a small one, so the first mail goes out at once), then 2, 3, ...
    number: int = 1

    def next(self, after: str) -> PageTask:
        """The task of the page after this one."""
        return PageTask(
            self.event_id,
            self.revision,
            self.kind,
            self.country,
            self.chain,
            after,
            self.number + 1,
        )


class PageTaskV1(Schema):
    """``org.tacso.notify.fanout.page.v1``: one page of a fan-out."""

    event_id = fields.String(required=True, validate=validate.Length(min=1, max=36))
    revision = fields.Integer(required=True, validate=validate.Range(min=1))
    kind = fields.String(required=True, validate=validate.Length(min=1, max=32))
    country = fields.String(required=True, validate=validate.OneOf(sorted(COUNTRIES)))
    chain = fields.String(required=True, validate=validate.Length(min=1, max=200))
    after = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    number = fields.Integer(load_default=1, validate=validate.Range(min=1))

    @post_load
    def _task(self, data: dict[str, Any], **_: Any) -> PageTask:
        return PageTask(**data)


def load_message(envelope: Envelope) -> Any:
    """What a notify worker's queue holds: an integration message or one of notify's page tasks."""
    if envelope.type != FANOUT_PAGE:
        return load_data(envelope)
    try:
        task: PageTask = PageTaskV1().load(envelope.data)
    except ValidationError as exc:
        raise PoisonMessage(f"{FANOUT_PAGE} data invalid: {exc.messages}") from exc
    return task


def page_task_message(
    task: PageTask, queue: str, correlation_id: str | None = None
) -> OutgoingMessage:
    """The broker message for ``task``, straight to the work queue ``queue`` (default exchange)."""
    envelope = Envelope(
        type=FANOUT_PAGE,
        source=SOURCE,
        data=PageTaskV1().dump(asdict(task)),
        subject=task.event_id,
        correlationid=correlation_id,
    )
    return OutgoingMessage(
        message_id=envelope.id,
        message_type=FANOUT_PAGE,
        routing_key=queue,
        body=json.dumps(envelope.to_dict(), separators=(",", ":"), ensure_ascii=False).encode(),
        exchange="",
        correlation_id=correlation_id,
    )
