"""notify's HTTP API: the delivery ledger, read-only."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView

from tacso_notify.bootstrap import Notify
from tacso_notify.ledger import DeliveryFilter
from tacso_notify.schemas import (
    DeliveryPageSchema,
    DeliveryQuerySchema,
    DeliverySummaryQuerySchema,
    DeliverySummarySchema,
)
from tacso_shared.auth import admin_required
from tacso_shared.web import Blueprint

blp = Blueprint("deliveries", __name__, url_prefix="/api/v1", description="Delivery ledger")


def _notify() -> Notify:
    notify: Notify = current_app.extensions["tacso_notify"]
    return notify


@blp.route("/deliveries")
class Deliveries(MethodView):
    @admin_required
    @blp.arguments(DeliveryQuerySchema, location="query")
    @blp.response(200, DeliveryPageSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List deliveries by event, kind, status or organisation."""
        flt = DeliveryFilter(
            event_id=args.get("event_id"),
            kind=args.get("kind"),
            status=args.get("status"),
            organisation_id=args.get("organisation_id"),
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
    @admin_required
    @blp.arguments(DeliverySummaryQuerySchema, location="query")
    @blp.response(200, DeliverySummarySchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Count one event's deliveries by kind and status."""
        return {"event_id": args["event_id"], "counts": _notify().ledger.counts(args["event_id"])}
