"""The registrations API: thin views over :mod:`tacso_events.registrations`.

Who may act for an organisation: a member of it (``organisation_member``), a country editor of
the event's country, or a network admin; editors and admins act for organisations of the event's
country only (the registry says where an organisation is).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Response, current_app, jsonify, request
from flask.views import MethodView
from marshmallow import Schema, ValidationError, fields, validate, validates

from tacso_events import access, operations
from tacso_events import registrations as regs
from tacso_events.bootstrap import Events
from tacso_events.models import REGISTRATION_STATUSES, Event, Registration
from tacso_events.registry_client import RegistryUnavailable
from tacso_shared.auth import current_caller, forbid, require
from tacso_shared.db import transaction
from tacso_shared.identity import COUNTRY_EDITOR, ORGANISATION_MEMBER, Caller
from tacso_shared.web import AsciiInteger, Blueprint, abort

blp = Blueprint(
    "registrations",
    __name__,
    url_prefix="/api/v1",
    description="Registrations: seats, waitlist and freed-seat offers",
)

MAX_PAGE_SIZE = 100


def _events() -> Events:
    events: Events = current_app.extensions["tacso_events"]
    return events


def _correlation_id() -> str | None:
    return request.headers.get("X-Correlation-ID") or None


class RegistrationCreateSchema(Schema):
    """What a client sends to register an organisation for an event."""

    organisation_id = fields.String(
        required=True,
        validate=[
            validate.Length(min=1, max=64),
            validate.Regexp(r"^[A-Za-z0-9_-]+$", error="Not a valid organisation id."),
        ],
    )
    seats = fields.Integer(
        load_default=1,
        strict=True,
        metadata={"description": "1 to MAX_SEATS_PER_ORGANISATION (default 3)."},
    )
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))

    @validates("seats")
    def _seats_within_cap(self, value: int, **_: Any) -> None:
        most = _events().settings.max_seats_per_organisation
        if isinstance(value, bool) or not 1 <= value <= most:
            raise ValidationError(f"Must be between 1 and {most}.")


class RegistrationSchema(Schema):
    """A registration as the API returns it."""

    id = fields.String(required=True)
    event_id = fields.String(required=True)
    organisation_id = fields.String(required=True)
    status = fields.String(
        required=True, metadata={"description": " | ".join(REGISTRATION_STATUSES)}
    )
    seats = fields.Integer(required=True)
    note = fields.String(required=True, allow_none=True)
    position = fields.Integer(
        allow_none=True,
        metadata={"description": "1-based place on the waitlist (waitlisted only)."},
    )
    offer_expires_at = fields.AwareDateTime(
        required=True, allow_none=True, metadata={"description": "End of an offer's claim window."}
    )
    sequence = fields.Integer(required=True, metadata={"description": "Status changes so far."})
    created_at = fields.AwareDateTime(required=True)
    updated_at = fields.AwareDateTime(required=True)


class RegistrationQuerySchema(Schema):
    """Filters and paging of an event's registrations."""

    status = fields.String(validate=validate.OneOf(REGISTRATION_STATUSES))
    page = AsciiInteger(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    page_size = AsciiInteger(load_default=20, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))


class RegistrationPageSchema(Schema):
    """One page of an event's registrations, in arrival order."""

    items = fields.List(fields.Nested(RegistrationSchema), required=True)
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    total = fields.Integer(required=True)


def _dump(registration: Registration, position: int | None) -> dict[str, Any]:
    """The registration's values for :class:`RegistrationSchema`, with its waitlist place."""
    names = [name for name in RegistrationSchema().fields if name != "position"]
    return {**{name: getattr(registration, name) for name in names}, "position": position}


def _visible_event(event_id: str, caller: Caller) -> Event:
    with _events().sessions() as session:
        event = operations.get_event(session, event_id, include_drafts=True)
    if event is None or not access.may_see(caller, event):
        abort(404, message=f"No event with id {event_id}.")
    return event


def _may_manage(caller: Caller, event: Event) -> bool:
    """Editors of the event's country and network admins see and act on every registration."""
    return caller.is_network_admin or (
        caller.role == COUNTRY_EDITOR and caller.covers(event.country)
    )


def _check_acts_for(caller: Caller, event: Event, organisation_id: str) -> None:
    """403 unless ``caller`` may act for ``organisation_id`` on ``event``; 422/503 from registry."""
    if caller.role == ORGANISATION_MEMBER:
        if caller.organisation_id != organisation_id or not caller.covers(event.country):
            forbid("You may register only your own organisation, for events of your country.")
        return
    if not _may_manage(caller, event):
        forbid("You may register organisations only for events of your country.")
    try:
        organisation = _events().registry.get_organisation(organisation_id)
    except RegistryUnavailable as exc:
        abort(
            503,
            message=f"The organisation cannot be checked now ({exc}); please try again later.",
            headers={"Retry-After": "5"},
        )
    if organisation is None:
        reason = "No such organisation."
    elif organisation.country != event.country:
        reason = f"The organisation belongs to {organisation.country}, not {event.country}."
    else:
        return
    abort(422, message=reason, errors={"json": {"organisation_id": [reason]}})


def _conflict(reason: str, **extra: Any) -> Response:
    response = jsonify(code=409, status="Conflict", message=reason, **extra)
    response.status_code = 409
    return response


def _registration_of(event: Event, registration_id: str, caller: Caller) -> Registration:
    with _events().sessions() as session:
        registration = session.get(Registration, registration_id)
    if registration is None or registration.event_id != event.id:
        abort(404, message=f"No registration {registration_id} for event {event.id}.")
    if not _may_manage(caller, event) and registration.organisation_id != caller.organisation_id:
        forbid("You may act only on your own organisation's registration.")
    return registration


@blp.route("/events/<string:event_id>/registrations")
class RegistrationList(MethodView):
    @require(COUNTRY_EDITOR, ORGANISATION_MEMBER)
    @blp.arguments(RegistrationCreateSchema)
    @blp.response(201, RegistrationSchema)
    @blp.alt_response(404, description="No such event (or a draft outside the caller's scope)")
    @blp.alt_response(
        409,
        description="The event takes no registrations (draft, cancelled, started), or the "
        "organisation is registered already (`registration_id` names it)",
    )
    @blp.alt_response(503, description="The registry could not be asked about the organisation")
    def post(self, body: dict[str, Any], event_id: str) -> Any:
        """Register an organisation: confirmed while seats fit, else waitlisted (`position`).

        An organisation member registers its own organisation; a country editor or network admin
        any organisation of the event's country. A cancelled, declined or expired registration
        is registered again (same id).
        """
        caller = current_caller()
        event = _visible_event(event_id, caller)
        _check_acts_for(caller, event, body["organisation_id"])
        events = _events()
        try:
            with transaction(events.sessions) as session:
                outcome = regs.register(
                    session,
                    event_id,
                    body["organisation_id"],
                    body["seats"],
                    events.policy,
                    note=body.get("note"),
                    correlation_id=_correlation_id(),
                )
                answer = _dump(outcome.registration, outcome.position)
        except regs.AlreadyRegistered as exc:
            return _conflict(exc.reason, registration_id=exc.registration_id)
        except regs.RegistrationRefused as exc:
            return _conflict(exc.reason)
        except regs.EventNotFound:
            abort(404, message=f"No event with id {event_id}.")
        events.listing_cache.clear()
        return answer, 201

    @require(COUNTRY_EDITOR, ORGANISATION_MEMBER)
    @blp.arguments(RegistrationQuerySchema, location="query")
    @blp.response(200, RegistrationPageSchema)
    @blp.alt_response(404, description="No such event (or a draft outside the caller's scope)")
    def get(self, query: dict[str, Any], event_id: str) -> dict[str, Any]:
        """List an event's registrations (an organisation member sees its own only)."""
        caller = current_caller()
        event = _visible_event(event_id, caller)
        if not _may_manage(caller, event) and caller.role != ORGANISATION_MEMBER:
            forbid("You may list registrations only of events of your country.")
        select = sa.select(Registration).where(Registration.event_id == event.id)
        if query.get("status"):
            select = select.where(Registration.status == query["status"])
        if not _may_manage(caller, event):
            select = select.where(Registration.organisation_id == caller.organisation_id)
        page, size = query["page"], query["page_size"]
        with _events().sessions() as session:
            total = session.scalar(sa.select(sa.func.count()).select_from(select.subquery()))
            rows = session.scalars(
                select.order_by(Registration.created_at, Registration.id)
                .limit(size)
                .offset((page - 1) * size)
            ).all()
            items = [_dump(r, regs.position_of(session, r)) for r in rows]
        return {"items": items, "page": page, "page_size": size, "total": int(total or 0)}


@blp.route("/events/<string:event_id>/registrations/<string:registration_id>")
class RegistrationById(MethodView):
    @require(COUNTRY_EDITOR, ORGANISATION_MEMBER)
    @blp.response(204)
    @blp.alt_response(404, description="No such event or registration")
    @blp.alt_response(409, description="The event has started, or takes no changes")
    def delete(self, event_id: str, registration_id: str) -> Any:
        """Cancel a registration; its seats are offered down the waitlist (idempotent)."""
        caller = current_caller()
        event = _visible_event(event_id, caller)
        _registration_of(event, registration_id, caller)
        events = _events()
        try:
            with transaction(events.sessions) as session:
                regs.cancel(
                    session,
                    event_id,
                    registration_id,
                    events.policy,
                    correlation_id=_correlation_id(),
                )
        except regs.RegistrationRefused as exc:
            return _conflict(exc.reason)
        except (regs.RegistrationNotFound, regs.EventNotFound):
            abort(404, message=f"No registration {registration_id} for event {event_id}.")
        events.listing_cache.clear()
        return "", 204


@blp.route("/events/<string:event_id>/registrations/<string:registration_id>/claim")
class RegistrationClaim(MethodView):
    @require(COUNTRY_EDITOR, ORGANISATION_MEMBER)
    @blp.response(200, RegistrationSchema)
    @blp.alt_response(404, description="No such event or registration")
    @blp.alt_response(409, description="No open offer to claim (none, or it expired)")
    def post(self, event_id: str, registration_id: str) -> Any:
        """Claim an offered seat: the registration becomes confirmed (idempotent)."""
        caller = current_caller()
        event = _visible_event(event_id, caller)
        _registration_of(event, registration_id, caller)
        events = _events()
        try:
            with transaction(events.sessions) as session:
                outcome = regs.claim(
                    session,
                    event_id,
                    registration_id,
                    events.policy,
                    correlation_id=_correlation_id(),
                )
                answer = _dump(outcome.registration, None)
        except regs.RegistrationRefused as exc:
            return _conflict(exc.reason)
        except (regs.RegistrationNotFound, regs.EventNotFound):
            abort(404, message=f"No registration {registration_id} for event {event_id}.")
        events.listing_cache.clear()
        return answer
