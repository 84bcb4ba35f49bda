"""Registry's API for joining the network: self-registration and list import (thin views)."""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from flask.views import MethodView

from tacso_registry import access, importing, signups
from tacso_registry.bootstrap import Registry
from tacso_registry.models import audit_log
from tacso_registry.schemas import (
    ImportQuerySchema,
    ImportReportSchema,
    SignupAcceptedSchema,
    SignupCreateSchema,
)
from tacso_shared import audit, correlation
from tacso_shared.audit_api import request_actor
from tacso_shared.auth import current_caller, public, require
from tacso_shared.db import transaction
from tacso_shared.identity import COUNTRY_EDITOR
from tacso_shared.ratelimit import SIGNUP, rate_limited
from tacso_shared.web import Blueprint, abort

blp = Blueprint("joining", __name__, url_prefix="/api/v1", description="Sign-up and import")

ACCEPTED = {
    "status": "accepted",
    "message": "If the address can be used, a message is on its way to it: open its link within "
    "7 days to confirm the sign-up.",
}
CSV_TYPES = ("text/csv", "application/csv", "text/plain", "application/vnd.ms-excel")


def _registry() -> Registry:
    registry: Registry = current_app.extensions["tacso_registry"]
    return registry


@blp.route("/signups")
class Signups(MethodView):
    @rate_limited(SIGNUP)
    @public
    @blp.arguments(SignupCreateSchema)
    @blp.response(202, SignupAcceptedSchema)
    def post(self, data: dict[str, Any]) -> dict[str, str]:
        """Sign a CSO or media outlet up (double opt-in: active once the mailed link is used).

        The answer is the same whether the address is known or not; a known address gets a
        mail saying it is registered already instead of a link. Limited per client address
        (`RATE_LIMIT_SIGNUP`).
        """
        registry = _registry()
        with transaction(registry.sessions) as session:
            signups.sign_up(
                session, data, registry.link_signer(), registry.public_url, correlation.current()
            )
        return ACCEPTED


def _upload() -> bytes:
    """The CSV of the request: a multipart ``file`` field or the body itself."""
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            abort(
                422,
                message="Send the CSV as the form field `file`.",
                errors={"files": {"file": ["Missing."]}},
            )
        data: bytes = upload.read()
    elif mimetype in CSV_TYPES:
        data = request.get_data()
    else:
        abort(415, message="Send the list as text/csv, or as multipart/form-data with a `file`.")
    if not data.strip():
        abort(422, message="The file is empty.", errors={"file": ["The file is empty."]})
    return data


@blp.route("/organisations/import")
class OrganisationImport(MethodView):
    @require(COUNTRY_EDITOR)
    @blp.arguments(ImportQuerySchema, location="query")
    @blp.doc(
        requestBody={
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            },
        }
    )
    @blp.response(200, ImportReportSchema)
    @blp.alt_response(
        413, description="The file is larger than MAX_CONTENT_LENGTH or has too many rows"
    )
    @blp.alt_response(415, description="Neither text/csv nor multipart/form-data")
    @blp.alt_response(422, description="The file cannot be read: encoding, CSV syntax, header")
    def post(self, args: dict[str, Any]) -> Any:
        """Import a CSV list of organisations (a country editor: CSOs and media of its country).

        Columns by header (docs/operations.md lists the names read in each language); encoding
        detected (UTF-8 with or without BOM, Windows-1250, Windows-1251, ISO-8859-2); rows with
        an address seen before in the file, or already registered, are skipped (or updated,
        with `existing=update`); each row's outcome is in the report. `dry_run=true` writes
        nothing. Consent is recorded with source `import`, basis `legitimate_interest`.
        """
        caller = current_caller()
        scope = importing.ImportScope()
        default_country = None
        if not caller.is_network_admin:
            scope = importing.ImportScope(countries=caller.countries, kinds=access.EDITOR_REGISTERS)
            default_country = caller.countries[0] if len(caller.countries) == 1 else None
        data = _upload()
        try:
            with transaction(_registry().sessions) as session:
                report = importing.import_organisations(
                    session,
                    data,
                    scope=scope,
                    dry_run=args["dry_run"],
                    existing=args["existing"],
                    default_country=default_country,
                    correlation_id=correlation.current(),
                )
                if not report.dry_run:
                    audit.record(
                        session,
                        audit_log,
                        request_actor(),
                        "organisation.import",
                        "import",
                        None,
                        after={
                            "created": report.created,
                            "updated": report.updated,
                            "skipped": report.skipped,
                        },
                    )
        except importing.ImportRefused as exc:
            abort(exc.status, message=exc.reason, errors={exc.field: [exc.reason]})
        return report
