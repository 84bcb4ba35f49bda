"""HTTP views of an event's life after creation: edit (``PATCH``) and cancel.

Thin views over :mod:`tacso_events.lifecycle`; who may act is the same as for publishing.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from flask.views import MethodView
from marshmallow import INCLUDE, Schema, ValidationError, fields, post_load, validate

from tacso_events import access, lifecycle, operations
from tacso_events.bootstrap import Events
from tacso_events.models import Event, audit_log
from tacso_events.registrations import CapacityBelowTaken
from tacso_events.schemas import EventSchema
from tacso_shared import audit
from tacso_shared.audit_api import request_actor
from tacso_shared.auth import current_caller, forbid, require
from tacso_shared.db import transaction
from tacso_shared.identity import COUNTRY_EDITOR
from tacso_shared.web import Blueprint, abort

blp = Blueprint("event_lifecycle", __name__, url_prefix="/api/v1", description="Events")

MERGE_PATCH = "application/merge-patch+json"
PATCH_CONTENT_TYPES = (MERGE_PATCH, "application/json")

_IF_MATCH = {
    "in": "header",
    "name": "If-Match",
    "required": False,
    "schema": {"type": "string"},
    "description": "The event's `ETag` (from `GET /api/v1/events/{event_id}` or the last write): "
    "the change is made only if nobody changed the event since, else 412.",
}


def _events() -> Events:
    events: Events = current_app.extensions["tacso_events"]
    return events


def _if_match() -> tuple[str, ...] | None:
    """The strong entity tags the client's ``If-Match`` names (``None``: any version)."""
    if "If-Match" not in request.headers or request.if_match.star_tag:
        return None
    return tuple(sorted(request.if_match.as_set(include_weak=False)))


def _with_etag(event: Event) -> tuple[Event, int, dict[str, str]]:
    return event, 200, {"ETag": f'"{lifecycle.event_etag(event)}"'}


def _editable(event_id: str) -> None:
    """404 unless the caller may see the event; 403 unless it may change it."""
    caller = current_caller()
    with _events().sessions() as session:
        found = operations.get_event(session, event_id, include_drafts=True)
    if found is None or not access.may_see(caller, found):
        abort(404, message=f"No event with id {event_id}.")
    if not access.may_publish(caller, found):
        forbid("You may change only your organisation's events.")


def _raw(kind: str, description: str | None = None, **schema: Any) -> fields.Raw:
    """A patch value taken as sent: it is checked after merging, by the create request's rules."""
    metadata: dict[str, Any] = {"type": kind, **schema}
    if description:
        metadata["description"] = description
    return fields.Raw(allow_none=True, metadata=metadata)


class EventPatchSchema(Schema):
    """A JSON merge patch (RFC 7396) of the create request's fields.

    Only what is sent changes; `null` removes an optional value (`description`, `venue`,
    `online_url`, `capacity`, one language of `translations`); an object (`venue`,
    `translations`) is merged, a list (`topics`) replaced. The result is validated as a create
    request.
    """

    class Meta:
        # Unknown fields are refused by the operation, with a reason per field.
        unknown = INCLUDE

    title = _raw("string")
    description = _raw("string")
    type = _raw("string")
    country = _raw("string", "May be sent, but not changed (422).")
    topics = _raw("array", "Replaces the list.", items={"type": "string"})
    starts_at = _raw("string", format="date-time")
    ends_at = _raw("string", format="date-time")
    venue = _raw("object", "name, address, city; merged, or null for none.")
    online_url = _raw("string", format="uri")
    capacity = _raw("integer")
    organiser_id = _raw("string", "May be sent, but not changed (422).")
    language = _raw("string")
    translations = _raw("object", "By language; null for a language removes it.")


class CancelSchema(Schema):
    """Why an event is cancelled (shown on its page and in the cancellation notices)."""

    reason = fields.String(
        required=True,
        validate=validate.Length(min=1, max=lifecycle.MAX_REASON_LENGTH),
        metadata={"description": "1 to 500 characters, shown to everyone who was told."},
    )

    @post_load
    def _reason(self, data: dict[str, Any], **_: Any) -> str:
        reason = str(data["reason"]).strip()
        if not reason:
            raise ValidationError("Must not be blank.", field_name="reason")
        return reason


@blp.route("/events/<string:event_id>", methods=["PATCH"])
class EventEdit(MethodView):
    @require(COUNTRY_EDITOR)
    @blp.arguments(EventPatchSchema, content_type=MERGE_PATCH)
    @blp.response(200, EventSchema, headers={"ETag": {"schema": {"type": "string"}}})
    @blp.doc(parameters=[_IF_MATCH])
    @blp.alt_response(404, description="No such event (or a draft of another country)")
    @blp.alt_response(
        409, description="The event is cancelled, or the capacity would be below the seats taken"
    )
    @blp.alt_response(412, description="If-Match does not name the event's current version")
    @blp.alt_response(415, description="The body is not a JSON merge patch")
    def patch(self, patch: dict[str, Any], event_id: str) -> Any:
        """Edit an event with a JSON merge patch of the create fields (as publishing: who may).

        **The rule:** a change to a *material* field (`starts_at`, `ends_at`, `venue`,
        `online_url`) of a published event bumps its `revision` and publishes
        `event.updated.<country>` (what changed, old and new values): everyone who was told is
        told again. Any other change (title, description, topics, type, capacity,
        translations) bumps nothing and sends nothing. A draft changes freely and silently.
        Validation is as on create; a published event cannot be moved to a time that has
        passed; `country`, `organiser_id` and `status` cannot change (422). A cancelled event
        cannot be edited (409). `Content-Type`: `application/merge-patch+json` or
        `application/json`.
        """
        if request.mimetype not in PATCH_CONTENT_TYPES:
            abort(415, message=f"The body must be a JSON merge patch ({MERGE_PATCH}).")
        _editable(event_id)
        events = _events()
        try:
            with transaction(events.sessions) as session:
                edit = lifecycle.edit_event(
                    session,
                    event_id,
                    patch,
                    events.settings.common.public_base_url,
                    request.headers.get("X-Correlation-ID") or None,
                    if_match=_if_match(),
                    policy=events.policy,
                )
                audit.record(
                    session,
                    audit_log,
                    request_actor(),
                    "event.update",
                    "event",
                    event_id,
                    before=edit.before,
                    after=EventSchema().dump(edit.event),
                )
            events.listing_cache.clear()
            return _with_etag(edit.event)
        except operations.EventNotFound:
            abort(404, message=f"No event with id {event_id}.")
        except lifecycle.EventIsCancelled:
            abort(409, message="The event is cancelled: it cannot be changed any more.")
        except lifecycle.PreconditionFailed:
            abort(412, message="The event has changed since you read it (If-Match): read it again.")
        except lifecycle.InvalidChange as exc:
            abort(422, message="The change is refused.", errors={"json": exc.errors})
        except CapacityBelowTaken as exc:
            abort(
                409,
                message=exc.reason,
                errors={"json": {"capacity": [exc.reason]}},
            )


@blp.route("/events/<string:event_id>/cancel")
class EventCancel(MethodView):
    @require(COUNTRY_EDITOR)
    @blp.arguments(CancelSchema)
    @blp.response(200, EventSchema, headers={"ETag": {"schema": {"type": "string"}}})
    @blp.doc(parameters=[_IF_MATCH])
    @blp.alt_response(404, description="No such event (or a draft of another country)")
    @blp.alt_response(409, description="A draft (never published) or cancelled already")
    @blp.alt_response(412, description="If-Match does not name the event's current version")
    def post(self, reason: str, event_id: str) -> Any:
        """Cancel a published event (as publishing: who may); its `revision` grows by one.

        Publishes `event.cancelled.<country>`; the event stays readable with its status
        `cancelled`, `cancel_reason` and `cancelled_at`. A draft was never announced: there is
        nothing to cancel (409; leave it unpublished). Cancelling twice is a 409.
        """
        _editable(event_id)
        events = _events()
        try:
            with transaction(events.sessions) as session:
                event = lifecycle.cancel_event(
                    session,
                    event_id,
                    reason,
                    events.settings.common.public_base_url,
                    request.headers.get("X-Correlation-ID") or None,
                    if_match=_if_match(),
                    policy=events.policy,
                )
                audit.record(
                    session,
                    audit_log,
                    request_actor(),
                    "event.cancel",
                    "event",
                    event_id,
                    before={"status": "published", "revision": event.revision - 1},
                    after={
                        "status": event.status,
                        "revision": event.revision,
                        "cancel_reason": event.cancel_reason,
                    },
                )
            events.listing_cache.clear()
            return _with_etag(event)
        except operations.EventNotFound:
            abort(404, message=f"No event with id {event_id}.")
        except lifecycle.DraftNotCancellable:
            abort(
                409,
                message="A draft was never published, so there is nothing to cancel: "
                "leave it unpublished (or edit it).",
            )
        except lifecycle.EventIsCancelled:
            abort(409, message="The event is cancelled already.")
        except lifecycle.PreconditionFailed:
            abort(412, message="The event has changed since you read it (If-Match): read it again.")
