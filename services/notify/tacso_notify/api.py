"""notify's HTTP API: the delivery ledger, read-only."""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView

from tacso_notify import ledger
from tacso_notify.bootstrap import Notify
from tacso_notify.schemas import (
    DeliveryPageSchema,
    DeliveryQuery,
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
    def get(self, query: DeliveryQuery) -> ledger.DeliveryPage:
        """List deliveries by event, kind, status or organisation."""
        return _notify().ledger.page(query.filter, query.page, query.page_size)


@blp.route("/deliveries/summary")
class DeliverySummary(MethodView):
    @admin_required
    @blp.arguments(DeliverySummaryQuerySchema, location="query")
    @blp.response(200, DeliverySummarySchema)
    def get(self, args: dict[str, str]) -> ledger.DeliverySummary:
        """Count one event's deliveries by kind and status."""
        return _notify().ledger.summary(args["event_id"])
