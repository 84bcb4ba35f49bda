"""notify's HTTP API: the delivery ledger, the suppression list and bounces."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jinja2
from flask import Response, current_app, request
from flask.views import MethodView

from tacso_notify import access, ledger, preview, webhooks
from tacso_notify.audience import AudienceUnavailable, RegistryDirectory
from tacso_notify.bootstrap import Notify
from tacso_notify.bounces import BounceReport, NotAMessage, ingest_bounce
from tacso_notify.models import STATUSES, audit_log
from tacso_notify.reports import (
    NoDeliveries,
    event_report,
    funnel_svg,
    report_csv,
    report_svg,
)
from tacso_notify.schemas import (
    AudiencePreviewSchema,
    BounceReportSchema,
    CreatedWebhookSchema,
    DeliveryPageSchema,
    DeliveryQuery,
    DeliveryQuerySchema,
    DeliverySummaryQuerySchema,
    DeliverySummarySchema,
    EventReportSchema,
    PageQuerySchema,
    ReportQuerySchema,
    SuppressionCreateSchema,
    SuppressionPageSchema,
    SuppressionQuerySchema,
    SuppressionSchema,
    WebhookCreateSchema,
    WebhookDeliveryPageSchema,
    WebhookListSchema,
    WebhookSchema,
)
from tacso_shared import audit
from tacso_shared.audit_api import request_actor
from tacso_shared.auth import current_caller, require
from tacso_shared.db import transaction
from tacso_shared.envelope import PoisonMessage
from tacso_shared.identity import COUNTRY_EDITOR
from tacso_shared.web import Blueprint, abort

blp = Blueprint("deliveries", __name__, url_prefix="/api/v1", description="Delivery ledger")
webhooks_blp = Blueprint(
    "webhooks",
    __name__,
    url_prefix="/api/v1",
    description="Signed webhooks (Standard Webhooks) for web clients that want to be told",
)


def _notify() -> Notify:
    notify: Notify = current_app.extensions["tacso_notify"]
    return notify


@blp.route("/deliveries")
class Deliveries(MethodView):
    @require(COUNTRY_EDITOR)
    @blp.arguments(DeliveryQuerySchema, location="query")
    @blp.response(200, DeliveryPageSchema)
    def get(self, query: DeliveryQuery) -> ledger.DeliveryPage:
        """List deliveries by event, kind, status or organisation (an editor: its country's)."""
        flt = dataclasses.replace(query.filter, countries=access.listed_countries(current_caller()))
        return _notify().ledger.page(flt, query.page, query.page_size)


@blp.route("/deliveries/summary")
class DeliverySummary(MethodView):
    @require(COUNTRY_EDITOR)
    @blp.arguments(DeliverySummaryQuerySchema, location="query")
    @blp.response(200, DeliverySummarySchema)
    @blp.alt_response(404, description="An event of another country")
    def get(self, args: dict[str, str]) -> ledger.DeliverySummary:
        """Count one event's deliveries by kind and status (an editor: its country's events)."""
        _check_event_scope(args["event_id"])
        return _notify().ledger.summary(args["event_id"])


def _audit(action: str, resource_id: str | None, before: Any = None, after: Any = None) -> None:
    """Record a write in the audit log (the ledger wrote in a transaction of its own)."""
    with transaction(_notify().sessions) as session:
        audit.record(
            session, audit_log, request_actor(), action, "suppression", resource_id, before, after
        )


def _check_event_scope(event_id: str) -> None:
    """404 unless the caller may read this event's deliveries (another country's: "none")."""
    countries = access.event_countries(_notify().sessions, event_id)
    if not access.may_read_event(current_caller(), countries):
        abort(404, message=f"No deliveries of event {event_id} in your scope.")


@blp.route("/suppressions")
class Suppressions(MethodView):
    @require()
    @blp.arguments(SuppressionQuerySchema, location="query")
    @blp.response(200, SuppressionPageSchema)
    def get(self, args: dict[str, Any]) -> ledger.SuppressionPage:
        """List the addresses that get no more bulk mail (SMTP 5xx, bounces, by hand)."""
        return _notify().ledger.suppressions(args.get("email"), args["page"], args["page_size"])

    @require()
    @blp.arguments(SuppressionCreateSchema)
    @blp.response(201, SuppressionSchema)
    @blp.alt_response(200, schema=SuppressionSchema, description="It was suppressed already")
    def post(self, data: dict[str, str]) -> Any:
        """Suppress an address by hand (idempotent: an address already suppressed is a 200)."""
        ledger_ = _notify().ledger
        existing = ledger_.suppression(data["email"])
        if existing is not None:
            return existing, 200
        ledger_.suppress([(data["email"], data["reason"])])
        _audit("suppression.add", data["email"], after={"reason": data["reason"]})
        return ledger_.suppression(data["email"])


@blp.route("/suppressions/<string:email>")
class SuppressionByEmail(MethodView):
    @require()
    @blp.response(204)
    @blp.alt_response(404, description="The address is not suppressed")
    def delete(self, email: str) -> None:
        """Lift a suppression: the address gets bulk mail again."""
        address = email.strip().lower()
        existing = _notify().ledger.suppression(address)
        if existing is None or not _notify().ledger.unsuppress([address]):
            abort(404, message=f"{email} is not suppressed.")
        _audit("suppression.lift", address, before={"reason": existing.reason})


@blp.route("/bounces")
class Bounces(MethodView):
    @require()
    @blp.doc(
        requestBody={
            "required": True,
            "description": "The bounce as received (a delivery status notification, RFC 3464).",
            "content": {"message/rfc822": {"schema": {"type": "string", "format": "binary"}}},
        }
    )
    @blp.response(200, BounceReportSchema)
    @blp.alt_response(400, description="The body is not an email message")
    def post(self) -> dict[str, Any]:
        """Take in a bounce: its permanently failed addresses are suppressed."""
        try:
            report: BounceReport = ingest_bounce(_notify().ledger, request.get_data())
        except NotAMessage as exc:
            abort(400, message=f"Not a bounce message: {exc}.")
        if report.permanent:
            _audit("bounce.ingest", None, after={"suppressed": list(report.permanent)})
        return {
            "permanent": list(report.permanent),
            "temporary": list(report.temporary),
            "suppressed": report.suppressed,
        }


@blp.route("/events/<string:event_id>/report")
class EventReport(MethodView):
    @require(COUNTRY_EDITOR)
    @blp.arguments(ReportQuerySchema, location="query")
    @blp.response(200, EventReportSchema)
    @blp.alt_response(404, description="No deliveries of this event (in the caller's scope)")
    def get(self, args: dict[str, str], event_id: str) -> Any:
        """One event's mail: counts by kind and status, failures by reason, mail over time, and
        the RSVP funnel (invited, then registrations by status).

        JSON by default; CSV (`?format=csv` or `Accept: text/csv`: `kind,status,reason,count`,
        UTF-8 with a BOM) or an HTML page with a chart (`?format=html` or `Accept: text/html`).
        """
        _check_event_scope(event_id)
        try:
            report = event_report(_notify().sessions, event_id)
        except NoDeliveries:
            abort(404, message=f"No deliveries of event {event_id}.")
        wanted = (
            args.get("format")
            or request.accept_mimetypes.best_match(
                ["application/json", "text/csv", "text/html"], default="application/json"
            ).split("/")[-1]
        )
        if wanted == "csv":
            return Response(
                report_csv(report),
                mimetype="text/csv",
                headers={
                    "Content-Disposition": f'attachment; filename="report-{event_id[:36]}.csv"'
                },
            )
        if wanted == "html":
            page = (
                _pages()
                .get_template("pages/report.html")
                .render(
                    report=report,
                    statuses=STATUSES,
                    chart=report_svg(report),
                    funnel=funnel_svg(report),
                    failures=[row for row in report.rows if row.reason],
                )
            )
            return Response(page, mimetype="text/html")
        return report


@blp.route("/events/<string:event_id>/audience")
class EventAudience(MethodView):
    @require(COUNTRY_EDITOR)
    @blp.response(200, AudiencePreviewSchema)
    @blp.alt_response(404, description="No such event (or one beyond the caller's countries)")
    @blp.alt_response(503, description="events or registry cannot be asked now")
    def get(self, event_id: str) -> preview.AudiencePreview:
        """Who would get the event's invitation and press notice now (a draft too), by language
        and topic, and how many are left out and why (no consent, opted out, suppressed).

        The event is read from events with the caller's own credential (events' rules on drafts
        apply); the organisations from registry; suppressions from notify's own list.
        """
        notify = _notify()
        try:
            event = preview.fetch_event(
                notify.settings.events_url, event_id, request.headers.get("Authorization")
            )
            if not current_caller().covers(str(event["country"])):
                raise preview.EventNotFound(event_id)
            directory = RegistryDirectory(
                notify.settings.registry_url, notify.settings.common.service_credential
            )
            return preview.preview_audience(event, directory, notify.sessions)
        except preview.EventNotFound:
            abort(404, message=f"No event {event_id} in your scope.")
        except (AudienceUnavailable, PoisonMessage) as exc:
            abort(503, message=f"The audience cannot be counted now: {exc}")


# ---- webhooks -----------------------------------------------------------------------------
def _webhook_scope() -> tuple[str, ...] | None:
    """The countries the caller's subscriptions are limited to (None: a network admin)."""
    caller = current_caller()
    return None if caller.is_network_admin else caller.countries


def _subscription_in_scope(subscription_id: str) -> webhooks.Subscription:
    """The subscription, or a 404 (also when it is beyond the caller's countries)."""
    found = webhooks.get_subscription(_notify().sessions, subscription_id)
    if found is None or not found.visible_to(_webhook_scope()):
        abort(404, message=f"No webhook subscription {subscription_id}.")
    return found


def _audited(subscription: webhooks.Subscription) -> dict[str, Any]:
    """What the audit log keeps of a subscription (never its secret)."""
    return {
        "url": subscription.url,
        "event_types": list(subscription.event_types),
        "countries": list(subscription.countries) if subscription.countries else None,
        "enabled": subscription.enabled,
    }


@webhooks_blp.route("/webhooks")
class Webhooks(MethodView):
    @require(COUNTRY_EDITOR)
    @webhooks_blp.response(200, WebhookListSchema)
    def get(self) -> dict[str, Any]:
        """List webhook subscriptions (a country editor: those limited to its countries)."""
        return {"items": webhooks.list_subscriptions(_notify().sessions, _webhook_scope())}

    @require(COUNTRY_EDITOR)
    @webhooks_blp.arguments(WebhookCreateSchema)
    @webhooks_blp.response(201, CreatedWebhookSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Subscribe a URL to event types; the answer shows the signing secret, once.

        Every POST is signed per the Standard Webhooks specification (`webhook-id`,
        `webhook-timestamp`, `webhook-signature`); its body is the CloudEvents envelope. A
        country editor's subscription is limited to its countries (omitted: all of them).
        """
        scope = _webhook_scope()
        countries = data["countries"]
        if scope is not None:
            if countries is None:
                countries = list(scope)
            elif not set(countries) <= set(scope):
                forbid_countries = sorted(set(countries) - set(scope))
                abort(403, message=f"You may not subscribe to countries {forbid_countries}.")
        try:
            webhooks.check_url(data["url"], _notify().settings.webhooks)
        except webhooks.UnsafeURL as exc:
            abort(422, errors={"json": {"url": [str(exc)]}})
        with transaction(_notify().sessions) as session:
            created = webhooks.create_subscription(
                session,
                data["url"],
                data["event_types"],
                countries,
                current_caller().subject,
                data["description"],
            )
            audit.record(
                session,
                audit_log,
                request_actor(),
                "webhook.create",
                "webhook",
                created.subscription.id,
                None,
                _audited(created.subscription),
            )
        return {**dataclasses.asdict(created.subscription), "secret": created.secret}


@webhooks_blp.route("/webhooks/<string:subscription_id>")
class WebhookById(MethodView):
    @require(COUNTRY_EDITOR)
    @webhooks_blp.response(200, WebhookSchema)
    @webhooks_blp.alt_response(404, description="No such subscription (in the caller's scope)")
    def get(self, subscription_id: str) -> webhooks.Subscription:
        """One webhook subscription (without its secret)."""
        return _subscription_in_scope(subscription_id)

    @require(COUNTRY_EDITOR)
    @webhooks_blp.response(204)
    @webhooks_blp.alt_response(404, description="No such subscription (in the caller's scope)")
    def delete(self, subscription_id: str) -> None:
        """Unsubscribe: the subscription and its delivery log are removed."""
        found = _subscription_in_scope(subscription_id)
        with transaction(_notify().sessions) as session:
            webhooks.delete_subscription(session, subscription_id)
            audit.record(
                session,
                audit_log,
                request_actor(),
                "webhook.delete",
                "webhook",
                subscription_id,
                _audited(found),
                None,
            )


@webhooks_blp.route("/webhooks/<string:subscription_id>/enable")
class WebhookEnable(MethodView):
    @require(COUNTRY_EDITOR)
    @webhooks_blp.response(200, WebhookSchema)
    @webhooks_blp.alt_response(404, description="No such subscription (in the caller's scope)")
    def post(self, subscription_id: str) -> Any:
        """Enable a subscription notify disabled (a 410, or failures for days); messages it
        missed while disabled are not sent."""
        found = _subscription_in_scope(subscription_id)
        with transaction(_notify().sessions) as session:
            enabled = webhooks.enable_subscription(session, subscription_id)
            audit.record(
                session,
                audit_log,
                request_actor(),
                "webhook.enable",
                "webhook",
                subscription_id,
                _audited(found),
                _audited(enabled) if enabled else None,
            )
        return enabled


@webhooks_blp.route("/webhooks/<string:subscription_id>/deliveries")
class WebhookDeliveries(MethodView):
    @require(COUNTRY_EDITOR)
    @webhooks_blp.arguments(PageQuerySchema, location="query")
    @webhooks_blp.response(200, WebhookDeliveryPageSchema)
    @webhooks_blp.alt_response(404, description="No such subscription (in the caller's scope)")
    def get(self, args: dict[str, int], subscription_id: str) -> webhooks.DeliveryLogPage:
        """A subscription's delivery log, newest first: attempts, last status, next attempt."""
        _subscription_in_scope(subscription_id)
        return webhooks.delivery_log(
            _notify().sessions, subscription_id, args["page"], args["page_size"]
        )


@functools.lru_cache(maxsize=1)
def _pages() -> jinja2.Environment:
    """Templates of notify's few HTML pages (autoescaped)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("tacso_notify", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
