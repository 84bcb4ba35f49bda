"""The registry's HTTP API: thin views over :mod:`tacso_registry.operations`."""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from flask.views import MethodView
from sqlalchemy.exc import IntegrityError

from tacso_registry import access, changes, consent, operations, preferences
from tacso_registry.bootstrap import Registry
from tacso_registry.change_schemas import (
    ConsentSchema,
    OrganisationPatchSchema,
    PreferencesSchema,
)
from tacso_registry.models import audit_log
from tacso_registry.schemas import (
    OrganisationCreateSchema,
    OrganisationPageSchema,
    OrganisationQuerySchema,
    OrganisationSchema,
    TopicSchema,
)
from tacso_shared import audit
from tacso_shared.audit_api import request_actor
from tacso_shared.auth import current_caller, forbid, public, require
from tacso_shared.db import transaction
from tacso_shared.identity import COUNTRY_EDITOR, ORGANISATION_MEMBER, SERVICE
from tacso_shared.ratelimit import PUBLIC, rate_limited
from tacso_shared.vocabulary import TOPICS
from tacso_shared.web import Blueprint, abort

blp = Blueprint(
    "organisations", __name__, url_prefix="/api/v1", description="Organisations and topics"
)


def _registry() -> Registry:
    registry: Registry = current_app.extensions["tacso_registry"]
    return registry


@blp.route("/organisations")
class Organisations(MethodView):
    @require(COUNTRY_EDITOR, SERVICE)
    @blp.arguments(OrganisationQuerySchema, location="query")
    @blp.response(200, OrganisationPageSchema)
    def get(self, args: dict[str, Any]) -> operations.OrganisationPage:
        """List organisations by country, kind and topics (a country editor: its country's)."""
        caller = current_caller()
        if not access.may_list_country(caller, args.get("country")):
            forbid("You may list only the organisations of your country.")
        flt = operations.OrganisationFilter(
            country=args.get("country"),
            kind=args.get("kind"),
            topics=tuple(args.get("topic") or ()),
            mailing_consent=args.get("mailing_consent"),
            mail_kind=args.get("mail_kind"),
            event_topics=tuple(args.get("event_topic") or ()),
            countries=access.listed_countries(caller),
        )
        with _registry().sessions() as session:
            return operations.list_organisations(
                session, flt, args["page"], args["page_size"], args.get("after")
            )

    @require(COUNTRY_EDITOR)
    @blp.arguments(OrganisationCreateSchema)
    @blp.response(201, OrganisationSchema)
    @blp.alt_response(409, description="Another organisation already uses this email")
    def post(self, data: dict[str, Any]) -> Any:
        """Register an organisation (a country editor: a CSO or media outlet of its country)."""
        if not access.may_register(current_caller(), data["country"], data["kind"]):
            forbid("You may register only CSOs and media of your country.")
        try:
            with transaction(_registry().sessions) as session:
                org = operations.register_organisation(
                    session,
                    data,
                    request.headers.get("X-Correlation-ID"),
                    actor=current_caller().subject,
                )
                audit.record(
                    session,
                    audit_log,
                    request_actor(),
                    "organisation.register",
                    "organisation",
                    org.id,
                    after=OrganisationSchema().dump(org),
                )
                return org
        # The check in register_organisation sees committed rows only; two requests racing with
        # the same email meet at the unique constraint instead.
        except (operations.DuplicateEmail, IntegrityError):
            abort(
                409,
                message="An organisation with this email is already registered.",
                errors={"json": {"email": ["Already registered."]}},
            )


@blp.route("/organisations/<string:organisation_id>")
class OrganisationById(MethodView):
    @require(COUNTRY_EDITOR, ORGANISATION_MEMBER, SERVICE)
    @blp.response(200, OrganisationSchema)
    @blp.alt_response(404, description="No such organisation")
    def get(self, organisation_id: str) -> Any:
        """Get one organisation (a member: its own; a country editor: its country's)."""
        with _registry().sessions() as session:
            org = operations.get_organisation(session, organisation_id)
            if org is None:
                abort(404, message=f"No organisation with id {organisation_id}.")
            if not access.may_read(current_caller(), org):
                forbid("You may not read this organisation.")
            return org

    @require(COUNTRY_EDITOR, ORGANISATION_MEMBER)
    @blp.arguments(OrganisationPatchSchema)
    @blp.response(200, OrganisationSchema)
    @blp.alt_response(404, description="No such organisation")
    @blp.alt_response(409, description="Another organisation already uses this email")
    @blp.alt_response(410, description="The organisation was erased")
    def patch(self, data: dict[str, Any], organisation_id: str) -> Any:
        """Change an organisation (JSON merge patch: name, email, language, topics, contacts).

        A country editor: its country's; a member: its own. `kind` and `country` cannot change
        (422). Publishes `organisation.updated.<country>` when something changed.
        """
        try:
            with transaction(_registry().sessions) as session:
                org = _changeable(session, organisation_id, access.may_change)
                before = OrganisationSchema().dump(org)
                if changes.update_organisation(session, org, data, _correlation_id()):
                    _audit(session, "organisation.update", org, before)
                return org
        except (operations.DuplicateEmail, IntegrityError):
            abort(
                409,
                message="Another organisation already uses this email.",
                errors={"json": {"email": ["Already registered."]}},
            )

    @require(COUNTRY_EDITOR)
    @blp.response(204)
    @blp.alt_response(404, description="No such organisation")
    @blp.alt_response(410, description="The organisation was erased already")
    def delete(self, organisation_id: str) -> None:
        """Erase an organisation: its personal data removed everywhere, a tombstone kept.

        The name becomes "Erased organisation", the address a non-deliverable placeholder,
        contacts go; consent records are kept (withdrawn) without personal data; audit entries
        are redacted; its accounts are disabled. Publishes `organisation.erased.<country>` so
        notify redacts its ledger. A country editor: its country's; members may not.
        """
        with transaction(_registry().sessions) as session:
            org = _changeable(session, organisation_id, access.may_administer)
            changes.erase_organisation(session, org, _correlation_id())
            audit.record(
                session,
                audit_log,
                request_actor(),
                "organisation.erase",
                "organisation",
                org.id,
                after={"erased": True},
            )


def _correlation_id() -> str | None:
    return request.headers.get("X-Correlation-ID")


def _changeable(session: Any, organisation_id: str, allowed: Any) -> Any:
    """The organisation to change, or the 404/403/410 that says why not."""
    org = operations.get_organisation(session, organisation_id)
    if org is None:
        abort(404, message=f"No organisation with id {organisation_id}.")
    caller = current_caller()
    if not allowed(caller, org):
        if not access.may_read(caller, org):
            forbid("You may not change this organisation.")
        forbid("You may not do this to this organisation.")
    if org.erased_at is not None:
        abort(410, message=f"Organisation {organisation_id} was erased.")
    return org


def _audit(session: Any, action: str, org: Any, before: Any) -> None:
    audit.record(
        session,
        audit_log,
        request_actor(),
        action,
        "organisation",
        org.id,
        before=before,
        after=OrganisationSchema().dump(org),
    )


@blp.route("/organisations/<string:organisation_id>/deactivate")
class DeactivateOrganisation(MethodView):
    @require(COUNTRY_EDITOR)
    @blp.response(200, OrganisationSchema)
    @blp.alt_response(404, description="No such organisation")
    @blp.alt_response(410, description="The organisation was erased")
    def post(self, organisation_id: str) -> Any:
        """Deactivate an organisation: kept, but it gets no mail (a country editor: its
        country's). Publishes `organisation.updated.<country>` with `active: false`."""
        return _set_active(organisation_id, False)


@blp.route("/organisations/<string:organisation_id>/activate")
class ActivateOrganisation(MethodView):
    @require(COUNTRY_EDITOR)
    @blp.response(200, OrganisationSchema)
    @blp.alt_response(404, description="No such organisation")
    @blp.alt_response(410, description="The organisation was erased")
    def post(self, organisation_id: str) -> Any:
        """Activate a deactivated organisation again (a country editor: its country's)."""
        return _set_active(organisation_id, True)


def _set_active(organisation_id: str, active: bool) -> Any:
    with transaction(_registry().sessions) as session:
        org = _changeable(session, organisation_id, access.may_administer)
        before = OrganisationSchema().dump(org)
        if changes.set_active(session, org, active, _correlation_id()):
            _audit(
                session,
                "organisation.activate" if active else "organisation.deactivate",
                org,
                before,
            )
        return org


@blp.route("/organisations/<string:organisation_id>/preferences")
class OrganisationPreferences(MethodView):
    @require(COUNTRY_EDITOR, ORGANISATION_MEMBER)
    @blp.response(200, PreferencesSchema)
    @blp.alt_response(404, description="No such organisation")
    @blp.alt_response(410, description="The organisation was erased")
    def get(self, organisation_id: str) -> Any:
        """An organisation's mailing preferences (a member: its own; an editor: its country's)."""
        with _registry().sessions() as session:
            org = _changeable(session, organisation_id, access.may_change)
            return preferences.preferences_of(session, org)

    @require(COUNTRY_EDITOR, ORGANISATION_MEMBER)
    @blp.arguments(PreferencesSchema)
    @blp.response(200, PreferencesSchema)
    @blp.alt_response(404, description="No such organisation")
    @blp.alt_response(410, description="The organisation was erased")
    def put(self, wanted: preferences.Preferences, organisation_id: str) -> Any:
        """Replace an organisation's mailing preferences; publishes `organisation.updated`.

        Unknown kinds or topics are a 422 naming them.
        """
        with transaction(_registry().sessions) as session:
            org = _changeable(session, organisation_id, access.may_change)
            before = preferences.preferences_of(session, org)
            if changes.set_preferences(session, org, wanted, _correlation_id()):
                audit.record(
                    session,
                    audit_log,
                    request_actor(),
                    "organisation.preferences",
                    "organisation",
                    org.id,
                    before=PreferencesSchema().dump(before),
                    after=PreferencesSchema().dump(wanted),
                )
            return preferences.preferences_of(session, org)


@blp.route("/organisations/<string:organisation_id>/consents")
class OrganisationConsents(MethodView):
    @require(COUNTRY_EDITOR, ORGANISATION_MEMBER, SERVICE)
    @blp.response(200, ConsentSchema(many=True))
    @blp.alt_response(404, description="No such organisation")
    def get(self, organisation_id: str) -> Any:
        """The consent records of an organisation, oldest first (who may read it may see them)."""
        with _registry().sessions() as session:
            org = operations.get_organisation(session, organisation_id)
            if org is None:
                abort(404, message=f"No organisation with id {organisation_id}.")
            if not access.may_read(current_caller(), org):
                forbid("You may not read this organisation.")
            return consent.consents_of(session, org.id)


@blp.route("/topics")
class Topics(MethodView):
    @rate_limited(PUBLIC)
    @public
    @blp.response(200, TopicSchema(many=True))
    def get(self) -> list[dict[str, str]]:
        """List the topics of the controlled vocabulary (public)."""
        return [{"slug": slug, "label": label} for slug, label in TOPICS.items()]
