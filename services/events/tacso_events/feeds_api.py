"""Public read-only views: the iCalendar feed and the HTML listing of events.

Both answer conditional GETs: an ``ETag`` (a hash of the body) and a ``Last-Modified`` (the
latest change of the data, see :func:`tacso_events.feeds.feed`); a client that has the same
body gets a ``304``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import Response, current_app, request
from flask.views import MethodView
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from tacso_events import feeds
from tacso_events.bootstrap import Events
from tacso_shared.auth import public
from tacso_shared.i18n import negotiate
from tacso_shared.ratelimit import PUBLIC, rate_limited
from tacso_shared.vocabulary import COUNTRIES, EVENT_TYPES, TOPICS
from tacso_shared.web import Blueprint

blp = Blueprint("event_feeds", __name__, description="Public calendar feed and listing")

#: How long browsers and shared caches may keep a feed or page without asking again.
MAX_AGE = 60
#: The pages' own policy: no script at all; the page's few styles are inline.
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def _events() -> Events:
    events: Events = current_app.extensions["tacso_events"]
    return events


class FeedQuerySchema(Schema):
    """Filters of the feed and the listing (each optional; other parameters are ignored)."""

    class Meta:
        unknown = EXCLUDE

    country = fields.String(validate=validate.OneOf(sorted(COUNTRIES)))
    topic = fields.List(
        fields.String(validate=validate.OneOf(sorted(TOPICS))),
        metadata={"description": "Repeat to match any of several topics."},
    )
    type = fields.String(validate=validate.OneOf(list(EVENT_TYPES)))

    @post_load
    def _filter(self, data: dict[str, Any], **_: Any) -> feeds.FeedFilter:
        return feeds.FeedFilter(
            country=data.get("country"),
            topics=tuple(sorted(set(data.get("topic") or ()))),
            type=data.get("type"),
        )


class ListingQuerySchema(Schema):
    """The listing's parameters as a browser's form sends them (an empty value: any)."""

    class Meta:
        unknown = EXCLUDE

    country = fields.String(metadata={"description": "A country code, e.g. `BA`."})
    topic = fields.List(fields.String(), metadata={"description": "Repeat for several topics."})
    type = fields.String(metadata={"description": "An event type, e.g. `workshop`."})
    lang = fields.String(
        metadata={"description": "The page's language (else the browser's Accept-Language)."}
    )


def _conditional(body: bytes, mimetype: str, last_modified: datetime | None) -> Response:
    """``body`` with its validators and caching headers; a 304 if the client has it already."""
    response = Response(body, mimetype=mimetype)
    response.set_etag(hashlib.sha256(body).hexdigest()[:32])
    if last_modified is not None:
        response.last_modified = last_modified
    response.cache_control.public = True
    response.cache_control.max_age = MAX_AGE
    response.make_conditional(request)
    return response


def _feed_query(flt: feeds.FeedFilter) -> str:
    pairs = [("country", flt.country)] if flt.country else []
    pairs += [("topic", topic) for topic in flt.topics]
    pairs += [("type", flt.type)] if flt.type else []
    return f"?{urlencode(pairs)}" if pairs else ""


@blp.route("/api/v1/events.ics")
class EventFeed(MethodView):
    @rate_limited(PUBLIC)
    @public
    @blp.arguments(FeedQuerySchema, location="query")
    @blp.response(
        200,
        content_type="text/calendar",
        description="An iCalendar (RFC 5545) `METHOD:PUBLISH` calendar",
        headers={"ETag": {"schema": {"type": "string"}}},
    )
    @blp.alt_response(304, description="Not modified (If-None-Match / If-Modified-Since)")
    def get(self, flt: feeds.FeedFilter) -> Response:
        """Subscribe to events in a calendar: upcoming and recently cancelled (public).

        Published events that have not ended, and those cancelled in the last 30 days
        (`STATUS:CANCELLED`), by country, topic and type. Each event's UID and SEQUENCE are
        those of the invitation mail (`event-<id>@<MAIL_FROM's domain>`, revision - 1), so a
        calendar that has both shows the event once. Times are in UTC. Cached for 60 s;
        `ETag` and `Last-Modified` answer conditional requests with a 304.
        """
        events = _events()
        with events.sessions() as session:
            found = feeds.feed(session, flt)
            body = feeds.build_feed(
                found.events,
                flt,
                events.settings.calendar_domain,
                events.settings.common.public_base_url,
            )
        response = _conditional(body, "text/calendar", found.last_modified)
        response.headers["Content-Disposition"] = 'inline; filename="tacso-events.ics"'
        return response


@blp.route("/events")
class EventListing(MethodView):
    @rate_limited(PUBLIC)
    @public
    @blp.arguments(ListingQuerySchema, location="query")
    @blp.response(
        200,
        content_type="text/html",
        description="An HTML page in the reader's language (no script needed)",
        headers={"ETag": {"schema": {"type": "string"}}},
    )
    @blp.alt_response(304, description="Not modified (If-None-Match / If-Modified-Since)")
    @blp.alt_response(
        400, content_type="text/html", description="A filter we do not have (an HTML page)"
    )
    def get(self, args: dict[str, Any]) -> Response:
        """The public list of upcoming events, with a filter form (country, topic, type).

        In `?lang=` or the browser's language; each event links to its page
        (`/events/{event_id}`). Cancelled events stay listed, marked, for 30 days.
        """
        language = negotiate(args.get("lang"), request.headers.get("Accept-Language"))
        sent: dict[str, Any] = {
            key: value for key, value in args.items() if key != "lang" and value
        }
        if "topic" in sent:
            sent["topic"] = [topic for topic in sent["topic"] if topic]
        try:
            flt: feeds.FeedFilter = FeedQuerySchema().load(sent)
        except ValidationError as exc:
            page = feeds.render_error(language, exc.messages_dict)
            response = Response(page, status=400, mimetype="text/html")
            response.headers["Content-Security-Policy"] = PAGE_CSP
            return response
        events = _events()
        with events.sessions() as session:
            found = feeds.feed(session, flt)
            page = feeds.render_listing(
                found.events,
                flt,
                language,
                events.settings.common.public_base_url,
                _feed_query(flt),
            )
        response = _conditional(page.encode(), "text/html", found.last_modified)
        response.headers["Content-Security-Policy"] = PAGE_CSP
        response.headers["Content-Language"] = language
        response.vary.add("Accept-Language")
        return response
