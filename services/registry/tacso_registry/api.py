"""The registry's HTTP API: thin views over :mod:`tacso_registry.operations`."""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from flask.views import MethodView
from sqlalchemy.exc import IntegrityError

from tacso_registry import access, operations
from tacso_registry.bootstrap import Registry
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
                    session, data, request.headers.get("X-Correlation-ID")
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


@blp.route("/topics")
class Topics(MethodView):
    @rate_limited(PUBLIC)
    @public
    @blp.response(200, TopicSchema(many=True))
    def get(self) -> list[dict[str, str]]:
        """List the topics of the controlled vocabulary (public)."""
        return [{"slug": slug, "label": label} for slug, label in TOPICS.items()]
