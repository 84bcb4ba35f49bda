"""``GET /api/v1/audit``, the same on every service: the audit log, for network admins only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import request
from flask.views import MethodView
from marshmallow import Schema, fields, validate
from sqlalchemy.orm import Session, sessionmaker

from tacso_shared import audit
from tacso_shared.auth import optional_caller, require
from tacso_shared.web import AsciiInteger, Blueprint


class AuditQuerySchema(Schema):
    """Filters and paging for the audit log."""

    actor = fields.String(
        validate=validate.Length(max=100),
        metadata={"description": "A subject, e.g. `user:<id>` or `api-key:<id>`."},
    )
    action = fields.String(validate=validate.Length(max=64))
    resource_type = fields.String(validate=validate.Length(max=32))
    resource_id = fields.String(validate=validate.Length(max=64))
    since = fields.AwareDateTime(metadata={"description": "Entries at or after this time."})
    until = fields.AwareDateTime(metadata={"description": "Entries before this time."})
    page = AsciiInteger(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    page_size = AsciiInteger(load_default=100, validate=validate.Range(min=1, max=1000))


class AuditEntrySchema(Schema):
    """One change: who, role, organisation, what, before and after, when, from where."""

    id = fields.Integer(required=True)
    at = fields.AwareDateTime(required=True)
    actor = fields.String(required=True)
    role = fields.String(required=True, allow_none=True)
    organisation_id = fields.String(required=True, allow_none=True)
    via = fields.String(required=True, allow_none=True)
    action = fields.String(required=True)
    resource_type = fields.String(required=True)
    resource_id = fields.String(required=True, allow_none=True)
    before = fields.Raw(required=True, allow_none=True)
    after = fields.Raw(required=True, allow_none=True)
    address = fields.String(required=True, allow_none=True)
    correlation_id = fields.String(required=True, allow_none=True)


class AuditPageSchema(Schema):
    """One page of the audit log, newest first."""

    items = fields.List(fields.Nested(AuditEntrySchema), required=True)
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    total = fields.Integer(required=True)


def request_actor() -> audit.Actor:
    """The actor of the current request: its caller, address and correlation id."""
    return audit.Actor(
        caller=optional_caller(),
        address=request.remote_addr,
        correlation_id=request.headers.get("X-Correlation-ID") or None,
    )


def audit_blueprint(table: sa.Table, sessions: Callable[[], sessionmaker[Session]]) -> Blueprint:
    """The audit log's blueprint for a service whose log is ``table``."""
    blp = Blueprint("audit", __name__, url_prefix="/api/v1", description="Audit log")

    @blp.route("/audit")
    class AuditLog(MethodView):
        @require()
        @blp.arguments(AuditQuerySchema, location="query")
        @blp.response(200, AuditPageSchema)
        def get(self, args: dict[str, Any]) -> dict[str, Any]:
            """List the changes made through this service, newest first (network admins)."""
            flt = audit.AuditFilter(
                actor=args.get("actor"),
                action=args.get("action"),
                resource_type=args.get("resource_type"),
                resource_id=args.get("resource_id"),
                since=args.get("since"),
                until=args.get("until"),
            )
            with sessions()() as session:
                items, total = audit.list_entries(
                    session, table, flt, args["page"], args["page_size"]
                )
            return {
                "items": items,
                "page": args["page"],
                "page_size": args["page_size"],
                "total": total,
            }

    return blp
