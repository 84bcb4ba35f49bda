"""Import of organisation lists (CSV): plain functions over a database session (no Flask).

Lists in the region come in UTF-8 (with or without a BOM), Windows-1250, Windows-1251 and
ISO-8859-2; the encoding is detected (``charset-normalizer``, limited to those). Columns are found
by their header (:data:`COLUMN_ALIASES`, case and accents as written); the delimiter is a comma,
semicolon or tab, whichever the header line uses. Each row is created, updated or skipped with a
reason. Rows are de-duplicated on the address (the normal form the API stores): a later row with an
address seen earlier in the file is skipped; an address an organisation has already is skipped, or
updated with ``existing="update"`` (name, language, topics). Everything is written in one
transaction with the outbox rows, in bulk; a dry run reads and checks the same way and writes
nothing.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from charset_normalizer import from_bytes
from sqlalchemy.orm import Session

from tacso_registry import operations, signups
from tacso_registry.models import Consent, Organisation, OrganisationTopic, Signup, outbox
from tacso_shared.addresses import InvalidEmailAddress, parse_email_address
from tacso_shared.contracts import (
    OrganisationRegistered,
    OrganisationUpdated,
    contract_of,
)
from tacso_shared.envelope import Envelope
from tacso_shared.vocabulary import COUNTRIES, LANGUAGES, ORGANISATION_KINDS, TOPICS

#: The encodings a list may come in, besides UTF-8 (tried first, with or without a BOM).
LEGACY_ENCODINGS = ("cp1250", "cp1251", "iso8859_2")
#: The largest file read, in rows (a larger one is refused as a whole: split it).
MAX_ROWS = 100_000
CREATED, UPDATED, SKIPPED = "created", "updated", "skipped"

#: The headers each field is read from (compared in lower case, spaces trimmed).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "organisation", "organization", "naziv", "emri", "ad", "назив", "име"),
    "email": ("email", "e-mail", "mail", "email address", "adresa", "e-posta", "е-пошта"),
    "kind": ("kind", "type", "vrsta", "tip", "lloji", "tür", "вид", "врста"),
    "country": ("country", "država", "drzava", "shteti", "ülke", "држава", "земја"),
    "topics": ("topics", "topic", "teme", "tema", "temat", "konular", "теме", "теми"),
    "language": ("language", "jezik", "gjuha", "dil", "језик", "јазик"),
}
REQUIRED_COLUMNS = ("name", "email")
#: The language of a row that names none: the country's usual one.
COUNTRY_LANGUAGE = {
    "AL": "sq",
    "BA": "bs",
    "XK": "sq",
    "ME": "cnr",
    "MK": "mk",
    "RS": "sr",
    "TR": "tr",
}
_LANGUAGES_LOWER = {code.lower(): code for code in LANGUAGES}
_TOPICS_BY_LABEL = {label.lower(): slug for slug, label in TOPICS.items()}


class ImportRefused(Exception):
    """The file as a whole cannot be imported (encoding, header, CSV syntax, size)."""

    def __init__(self, field: str, reason: str, status: int = 422) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason
        self.status = status


@dataclass
class RowResult:
    """What happened to one line of the file."""

    line: int
    outcome: str
    email: str | None = None
    reason: str | None = None
    organisation_id: str | None = None


@dataclass
class ImportReport:
    """The whole import: how the file was read and what happened to each row."""

    dry_run: bool
    encoding: str
    columns: dict[str, str]
    rows: list[RowResult] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for row in self.rows if row.outcome == outcome)

    @property
    def created(self) -> int:
        return self.count(CREATED)

    @property
    def updated(self) -> int:
        return self.count(UPDATED)

    @property
    def skipped(self) -> int:
        return self.count(SKIPPED)


@dataclass(frozen=True)
class ImportScope:
    """Who imports: which countries and kinds their rows may have."""

    #: Empty: every country.
    countries: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ORGANISATION_KINDS


def decode(data: bytes) -> tuple[str, str]:
    """The text of ``data`` and the encoding it was read in; :class:`ImportRefused` if none fits."""
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError:
            raise ImportRefused("file", "Starts with a UTF-8 BOM but is not UTF-8.") from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    best = from_bytes(data, cp_isolation=list(LEGACY_ENCODINGS)).best()
    if best is None:
        raise ImportRefused(
            "file",
            "The encoding is not recognised: save the file as UTF-8, Windows-1250, "
            "Windows-1251 or ISO-8859-2.",
        )
    return str(best), str(best.encoding)


def _header_key(header: str) -> str:
    return " ".join(header.replace("\ufeff", "").strip().lower().split())


def map_columns(header: Sequence[str]) -> dict[str, int]:
    """Which column each field is in; :class:`ImportRefused` if a required one is missing."""
    by_alias = {alias: name for name, aliases in COLUMN_ALIASES.items() for alias in aliases}
    found: dict[str, int] = {}
    for index, raw in enumerate(header):
        name = by_alias.get(_header_key(raw))
        if name is None:
            continue
        if name in found:
            raise ImportRefused("header", f"Two columns are read as {name!r}: {raw!r} and another.")
        found[name] = index
    missing = [name for name in REQUIRED_COLUMNS if name not in found]
    if missing:
        known = "; ".join(f"{n}: {', '.join(a)}" for n, a in COLUMN_ALIASES.items())
        raise ImportRefused(
            "header", f"Missing column(s) {', '.join(missing)}. Headers read: {known}."
        )
    return found


def _rows(text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            raise ImportRefused("file", "The file is empty: a header line is needed.")
        rows: list[tuple[int, list[str]]] = []
        for cells in reader:
            if len(rows) >= MAX_ROWS:
                raise ImportRefused("file", f"More than {MAX_ROWS} rows: split the file.", 413)
            if any(cell.strip() for cell in cells):
                rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise ImportRefused(
            "file", f"Not a valid CSV file (line {reader.line_num}): {exc}."
        ) from None
    return header, rows


def _split_topics(raw: str) -> list[str]:
    topics = []
    for part in raw.replace("|", ";").split(";"):
        value = part.strip()
        if not value:
            continue
        slug = value.lower() if value.lower() in TOPICS else _TOPICS_BY_LABEL.get(value.lower())
        if slug is None:
            raise ValueError(f"unknown topic {value!r}")
        topics.append(slug)
    return sorted(set(topics))


def _check_row(
    cells: list[str],
    columns: dict[str, int],
    width: int,
    scope: ImportScope,
    default_country: str | None,
) -> dict[str, Any] | str:
    """The organisation a row describes, or why it is skipped."""
    if len(cells) != width:
        return f"has {len(cells)} fields, the header has {width}"

    def cell(name: str) -> str:
        index = columns.get(name)
        return cells[index].strip() if index is not None else ""

    name = cell("name")
    if not name:
        return "name is empty"
    if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in name):
        return "name contains control characters"
    if len(name) > 200:
        return "name is longer than 200 characters"
    try:
        email = parse_email_address(cell("email").lower()).normalised
    except InvalidEmailAddress as exc:
        return f"email: {exc}"
    kind = (cell("kind") or "cso").lower()
    if kind not in ORGANISATION_KINDS:
        return f"unknown kind {kind!r} (one of: {', '.join(ORGANISATION_KINDS)})"
    if kind not in scope.kinds:
        return f"you may not import organisations of kind {kind!r}"
    country = (cell("country") or default_country or "").upper()
    if not country:
        return "no country (give the column or a default country)"
    if country not in COUNTRIES:
        return f"unknown country {country!r}"
    if scope.countries and country not in scope.countries:
        return f"country {country} is outside your scope"
    raw_language = cell("language")
    language = _LANGUAGES_LOWER.get(raw_language.lower().replace("_", "-"))
    if raw_language and language is None:
        return f"unknown language {raw_language!r} (one of: {', '.join(LANGUAGES)})"
    try:
        topics = _split_topics(cell("topics"))
    except ValueError as exc:
        return str(exc)
    return {
        "name": name,
        "email": email,
        "kind": kind,
        "country": country,
        "language": language or COUNTRY_LANGUAGE[country],
        "topics": topics,
    }


def import_organisations(
    session: Session,
    data: bytes,
    *,
    scope: ImportScope = ImportScope(),
    dry_run: bool = False,
    existing: str = "skip",
    default_country: str | None = None,
    basis: str = "legitimate_interest",
    correlation_id: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Read a CSV list and create (or update) its organisations; the report says what happened.

    ``progress`` is called with the number of rows just checked (for a progress bar).
    """
    text, encoding = decode(data)
    if "\x00" in text:
        raise ImportRefused("file", "The file contains NUL characters: it is not a text file.")
    header, rows = _rows(text)
    columns = map_columns(header)
    report = ImportReport(
        dry_run=dry_run,
        encoding=encoding,
        columns={name: header[index].strip() for name, index in columns.items()},
    )
    checked: list[tuple[int, dict[str, Any]]] = []
    first_line: dict[str, int] = {}
    for number, (line, cells) in enumerate(rows, start=1):
        outcome = _check_row(cells, columns, len(header), scope, default_country)
        if isinstance(outcome, str):
            report.rows.append(RowResult(line, SKIPPED, None, outcome))
        elif outcome["email"] in first_line:
            reason = f"same address as line {first_line[outcome['email']]}"
            report.rows.append(RowResult(line, SKIPPED, outcome["email"], reason))
        else:
            first_line[outcome["email"]] = line
            checked.append((line, outcome))
        if progress is not None and number % 500 == 0:
            progress(500)
    if progress is not None and len(rows) % 500:
        progress(len(rows) % 500)
    known = _known(session, [org["email"] for _, org in checked])
    to_create: list[tuple[int, dict[str, Any]]] = []
    to_update: list[tuple[int, dict[str, Any], Organisation]] = []
    for line, org in checked:
        found = known.get(org["email"])
        if found is None:
            to_create.append((line, org))
        elif existing == "update" and (not scope.countries or found.country in scope.countries):
            to_update.append((line, org, found))
        else:
            reason = "already registered" + (
                "" if existing != "update" else f" in {found.country}, outside your scope"
            )
            report.rows.append(RowResult(line, SKIPPED, org["email"], reason, found.id))
    now = datetime.now(UTC)
    for line, org in to_create:
        org["id"] = str(uuid.uuid4())
        report.rows.append(RowResult(line, CREATED, org["email"], None, org["id"]))
    for line, org, found in to_update:
        report.rows.append(RowResult(line, UPDATED, org["email"], None, found.id))
    report.rows.sort(key=lambda row: row.line)
    if not dry_run:
        _write(session, [o for _, o in to_create], to_update, now, basis, correlation_id)
    return report


def _known(session: Session, emails: Sequence[str]) -> dict[str, Organisation]:
    found: dict[str, Organisation] = {}
    for start in range(0, len(emails), 500):
        chunk = list(emails[start : start + 500])
        for org in session.scalars(sa.select(Organisation).where(Organisation.email.in_(chunk))):
            found[org.email] = org
    return found


#: One schema per contract, made once: a schema per row (and the check by loading back that
#: ``envelope_of`` does) would cost more than the rest of the import; every field was checked
#: by :func:`_check_row` already.
_SCHEMAS: dict[type, Any] = {}


def _outbox_row(message: Any, subject: str, correlation_id: str | None) -> dict[str, Any]:
    contract = contract_of(message)
    schema = _SCHEMAS.get(contract.message)
    if schema is None:
        schema = _SCHEMAS[contract.message] = contract.schema()
    envelope = Envelope(
        type=contract.type,
        source=operations.SOURCE,
        subject=subject,
        correlationid=correlation_id,
        data=schema.dump(message),
    )
    return {
        "id": envelope.id,
        "message_type": envelope.type,
        "routing_key": contract_of(message).routing_key(message),
        "body": envelope.to_json(),
        "correlation_id": envelope.correlationid,
        "created_at": envelope.time,
        "attempts": 0,
    }


def _write(
    session: Session,
    created: Iterable[dict[str, Any]],
    updated: Sequence[tuple[int, dict[str, Any], Organisation]],
    now: datetime,
    basis: str,
    correlation_id: str | None,
) -> None:
    """Insert the new organisations, their topics, consents and messages in bulk."""
    orgs: list[dict[str, Any]] = []
    topics: list[dict[str, Any]] = []
    consents: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for org in created:
        orgs.append(
            {
                "id": org["id"],
                "name": org["name"],
                "kind": org["kind"],
                "country": org["country"],
                "email": org["email"],
                "language": org["language"],
                "mailing_consent": True,
                "created_at": now,
                "updated_at": now,
            }
        )
        topics.extend({"organisation_id": org["id"], "topic": t} for t in org["topics"])
        consents.append(_consent(org, now, basis))
        # The organisation's consent record (registry's consents table): basis, source, time.
        records.append(
            {
                "id": str(uuid.uuid4()),
                "organisation_id": org["id"],
                "basis": basis,
                "source": "import",
                "recorded_at": now,
                "text_version": None,
                "actor": None,
                "withdrawn_at": None,
            }
        )
        message = OrganisationRegistered(
            organisation_id=org["id"],
            name=org["name"],
            kind=org["kind"],
            country=org["country"],
            email=org["email"],
            language=org["language"],
            topics=tuple(org["topics"]),
        )
        messages.append(_outbox_row(message, org["id"], correlation_id))
    for _, org, found in updated:
        found.name = org["name"]
        found.language = org["language"]
        found.updated_at = now
        found.topic_links = [OrganisationTopic(topic=t) for t in org["topics"]]
        consents.append(_consent({**org, "id": found.id}, now, basis))
        update = OrganisationUpdated(
            organisation_id=found.id,
            name=found.name,
            kind=found.kind,
            country=found.country,
            email=found.email,
            language=found.language,
            topics=tuple(org["topics"]),
            mailing_consent=found.mailing_consent,
        )
        messages.append(_outbox_row(update, found.id, correlation_id))
    # Core inserts (executemany): the ORM's bulk path costs more per row than the database does.
    if orgs:
        session.execute(_table(Organisation).insert(), orgs)
    if topics:
        session.execute(_table(OrganisationTopic).insert(), topics)
    session.flush()
    if consents:
        session.execute(_table(Signup).insert(), consents)
    if records:
        session.execute(_table(Consent).insert(), records)
    if messages:
        session.execute(outbox.insert(), messages)


def _table(model: Any) -> sa.Table:
    table: sa.Table = model.__table__
    return table


def _consent(org: dict[str, Any], now: datetime, basis: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "status": signups.IMPORTED,
        "email": org["email"],
        "name": org["name"],
        "kind": org["kind"],
        "country": org["country"],
        "language": org["language"],
        "topics": ",".join(org["topics"]),
        "consent_basis": basis,
        "consent_source": "import",
        "consent_text_version": None,
        "consented_at": now,
        "organisation_id": org["id"],
        "created_at": now,
        "expires_at": None,
        "confirmed_at": None,
    }
