"""The one message envelope: CloudEvents 1.0 attributes around a versioned ``data`` payload."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

SPEC_VERSION = "1.0"
JSON = "application/json"


class PoisonMessage(Exception):
    """A message that can never be handled: bad JSON, bad envelope, unknown type, wrong schema."""


@dataclass(frozen=True)
class Envelope:
    """A CloudEvents message: who sent what, when, about what, with which payload."""

    type: str
    source: str
    data: dict[str, Any]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    correlationid: str | None = None
    subject: str | None = None
    specversion: str = SPEC_VERSION
    datacontenttype: str = JSON

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form, as it travels on the wire."""
        out: dict[str, Any] = {
            "specversion": self.specversion,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time.isoformat(),
            "datacontenttype": self.datacontenttype,
            "data": self.data,
        }
        if self.correlationid is not None:
            out["correlationid"] = self.correlationid
        if self.subject is not None:
            out["subject"] = self.subject
        return out

    def to_json(self) -> str:
        """Serialise to a JSON string (never pickle)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)


class EnvelopeSchema(Schema):
    """Validates the envelope attributes; ``data`` is validated by the type's own contract."""

    specversion = fields.String(required=True, validate=validate.Equal(SPEC_VERSION))
    id = fields.String(required=True, validate=validate.Length(min=1, max=200))
    source = fields.String(required=True, validate=validate.Length(min=1, max=200))
    type = fields.String(required=True, validate=validate.Length(min=1, max=200))
    time = fields.AwareDateTime(required=True)
    datacontenttype = fields.String(load_default=JSON, validate=validate.Equal(JSON))
    correlationid = fields.String(load_default=None, allow_none=True)
    subject = fields.String(load_default=None, allow_none=True)
    data = fields.Dict(required=True)


def parse_envelope(body: bytes | str) -> Envelope:
    """Decode and validate an envelope; raise :class:`PoisonMessage` if it cannot be."""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise PoisonMessage(f"body is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise PoisonMessage("body is not a JSON object")
    try:
        loaded = EnvelopeSchema().load(raw)
    except ValidationError as exc:
        raise PoisonMessage(f"invalid envelope: {exc.messages}") from exc
    return Envelope(**loaded)
