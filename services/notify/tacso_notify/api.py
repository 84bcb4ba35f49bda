"""notify's HTTP API: the delivery ledger, read-only."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView

from tacso_notify import access
from tacso_notify.bootstrap import Notify
from tacso_notify.ledger import DeliveryFilter
from tacso_notify.schemas import (
    DeliveryPageSchema,
    DeliveryQuerySchema,
    DeliverySummaryQuerySchema,
    DeliverySummarySchema,
)
from tacso_shared.auth import current_caller, require
from tacso_shared.identity import COUNTRY_EDITOR
from tacso_shared.web import Blueprint, abort

blp = Blueprint("deliveries", __name__, url_prefix="/api/v1", description="Delivery ledger")


def _notify() -> Notify:
    notify: Notify = current_app.extensions["tacso_notify"]
    return notify


@blp.route("/deliveries")
class Deliveries(MethodView):
    @require(COUNTRY_EDITOR)
    @blp.arguments(DeliveryQuerySchema, location="query")
    @blp.response(200, DeliveryPageSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List deliveries by event, kind, status or organisation (an editor: its country's)."""
        flt = DeliveryFilter(
            event_id=args.get("event_id"),
            kind=args.get("kind"),
            status=args.get("status"),
            organisation_id=args.get("organisation_id"),
            countries=access.listed_countries(current_caller()),
        )
        items, total = _notify().ledger.list(flt, args["page"], args["page_size"])
        return {
            "items": items,
            "page": args["page"],
            "page_size": args["page_size"],
            "total": total,
        }


@blp.route("/deliveries/summary")
class DeliverySummary(MethodView):
    @require(COUNTRY_EDITOR)
    @blp.arguments(DeliverySummaryQuerySchema, location="query")
    @blp.response(200, DeliverySummarySchema)
    @blp.alt_response(404, description="An event of another country")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Count one event's deliveries by kind and status (an editor: its country's events)."""
        countries = access.event_countries(_notify().sessions, args["event_id"])
        if not access.may_read_event(current_caller(), countries):
            abort(404, message=f"No deliveries of event {args['event_id']} in your scope.")
        return {"event_id": args["event_id"], "counts": _notify().ledger.counts(args["event_id"])}
