"""The events service's HTTP API: thin views over :mod:`tacso_events.operations`."""

from __future__ import annotations

from flask import Response, current_app, request
from flask.views import MethodView

from tacso_events import access, operations
from tacso_events.bootstrap import Events
from tacso_events.lifecycle import event_etag
from tacso_events.models import Event, audit_log
from tacso_events.registry_client import RegistryUnavailable
from tacso_events.schemas import EventCreateSchema, EventPageSchema, EventQuerySchema, EventSchema
from tacso_shared import audit
from tacso_shared.audit_api import request_actor
from tacso_shared.auth import current_caller, forbid, optional_caller, public, require
from tacso_shared.db import transaction
from tacso_shared.identity import COUNTRY_EDITOR
from tacso_shared.ratelimit import PUBLIC, rate_limited
from tacso_shared.web import Blueprint, abort

blp = Blueprint("events", __name__, url_prefix="/api/v1", description="Events")


def _events() -> Events:
    events: Events = current_app.extensions["tacso_events"]
    return events


def _base_url() -> str:
    return _events().settings.common.public_base_url


def _correlation_id() -> str | None:
    return request.headers.get("X-Correlation-ID") or None


@blp.route("/events")
class EventList(MethodView):
    @rate_limited(PUBLIC)
    @public
    @blp.arguments(EventQuerySchema, location="query")
    @blp.response(200, EventPageSchema)
    def get(self, query: operations.EventQuery) -> Response:
        """List published events by country, topics, type and time (public)."""
        cache = _events().listing_cache
        key = request.full_path
        body = cache.get(key)
        if body is None:
            body = current_app.json.dumps(EventPageSchema().dump(self._page(query))).encode()
            cache.put(key, body)
        response = current_app.response_class(body, mimetype="application/json")
        response.cache_control.public = True
        response.cache_control.max_age = int(cache.seconds)
        return response

    @staticmethod
    def _page(query: operations.EventQuery) -> operations.EventPage:
        with _events().sessions() as session:
            return operations.list_events(session, query.filter, query.page, query.page_size)

    @require(COUNTRY_EDITOR)
    @blp.arguments(EventCreateSchema)
    @blp.response(201, EventSchema)
    @blp.alt_response(503, description="The registry could not be asked about the organiser")
    def post(self, command: operations.CreateEvent) -> Event:
        """Create an event; unless it is a draft, publish it at once.

        A country editor creates events of its own country with its own organisation as the
        organiser.
        """
        if not access.may_create(current_caller(), command.country, command.organiser_id):
            forbid("You may create events only in your country, organised by your organisation.")
        events = _events()
        try:
            with transaction(events.sessions) as session:
                event = operations.create_event(
                    session, command, events.registry, _base_url(), _correlation_id()
                )
                audit.record(
                    session,
                    audit_log,
                    request_actor(),
                    "event.create",
                    "event",
                    event.id,
                    after=EventSchema().dump(event),
                )
            events.listing_cache.clear()
            return event
        except operations.InvalidOrganiser as exc:
            abort(422, message=exc.reason, errors={"json": {"organiser_id": [exc.reason]}})
        except RegistryUnavailable as exc:
            abort(
                503,
                message=f"The organiser cannot be checked now ({exc}); please try again later.",
                headers={"Retry-After": "5"},
            )


@blp.route("/events/<string:event_id>")
class EventById(MethodView):
    @rate_limited(PUBLIC)
    @public
    @blp.response(200, EventSchema)
    @blp.alt_response(404, description="No such event, or a draft outside the caller's scope")
    def get(self, event_id: str) -> tuple[Event, int, dict[str, str]]:
        """Get one event (public; a draft only for a network admin or its country's editors).

        Its `ETag` header is what `If-Match` takes on `PATCH` and `cancel`.
        """
        with _events().sessions() as session:
            event = operations.get_event(session, event_id, include_drafts=True)
        if event is None or not access.may_see(optional_caller(), event):
            abort(404, message=f"No event with id {event_id}.")
        return event, 200, {"ETag": f'"{event_etag(event)}"'}


@blp.route("/events/<string:event_id>/publish")
class EventPublish(MethodView):
    @require(COUNTRY_EDITOR)
    @blp.response(200, EventSchema)
    @blp.alt_response(404, description="No such event (or a draft of another country)")
    @blp.alt_response(409, description="The event is published already")
    def post(self, event_id: str) -> Event:
        """Publish a draft event (a country editor: its own organisation's)."""
        caller = current_caller()
        with _events().sessions() as session:
            found = operations.get_event(session, event_id, include_drafts=True)
        if found is None or not access.may_see(caller, found):
            abort(404, message=f"No event with id {event_id}.")
        if not access.may_publish(caller, found):
            forbid("You may publish only your organisation's events.")
        try:
            with transaction(_events().sessions) as session:
                event = operations.publish_event(session, event_id, _base_url(), _correlation_id())
                audit.record(
                    session,
                    audit_log,
                    request_actor(),
                    "event.publish",
                    "event",
                    event.id,
                    before={"status": "draft"},
                    after={"status": event.status, "revision": event.revision},
                )
            _events().listing_cache.clear()
            return event
        except operations.EventNotFound:
            abort(404, message=f"No event with id {event_id}.")
        except operations.AlreadyPublished:
            abort(409, message="The event is published already.")
