"""Specification of the CSV import: encodings, columns, de-duplication, dry runs, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask.testing import FlaskClient

from tacso_registry import importing
from tacso_registry.bootstrap import Registry
from tacso_registry.cli import cli
from tacso_registry.models import Organisation, Signup, outbox

IMPORT = "/api/v1/organisations/import"

LATIN = [
    ("Udruženje žena Čačak", "zene@cacak.example.org"),
    ("Ćirilica i đaci", "djaci@example.org"),
    ("Šumadijski ždral", "zdral@example.org"),
    ("ČĆĐŠŽ čćđšž", "velika@example.org"),
]
CYRILLIC = [
    ("Удружење грађана Ђурђевак", "djurdjevak@example.org"),
    ("Здружение Љубов и Његош", "ljubov@example.org"),
]


def csv_of(rows: list[tuple[str, str]], country: str = "RS", sep: str = ";") -> str:
    lines = [sep.join(["Naziv", "E-mail", "Vrsta", "Country", "Topics", "Language"])]
    for name, email in rows:
        lines.append(sep.join([name, email, "cso", country, "human-rights|youth", "sr-Latn"]))
    return "\r\n".join(lines) + "\r\n"


def post_csv(client: FlaskClient, admin: dict[str, str], data: bytes, query: str = "") -> Any:
    return client.post(
        f"{IMPORT}?{query}", data=data, headers={**admin, "Content-Type": "text/csv"}
    )


def names(registry: Registry) -> dict[str, str]:
    with registry.sessions() as session:
        return {o.email: o.name for o in session.scalars(sa.select(Organisation))}


def outbox_count(registry: Registry) -> int:
    with registry.engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(outbox)) or 0)


class TestEncodings:
    def test_a_windows_1250_list_round_trips_exactly(
        self, client: FlaskClient, admin: dict[str, str], registry: Registry
    ) -> None:
        data = csv_of(LATIN).encode("cp1250")

        response = post_csv(client, admin, data)

        body = response.get_json()
        assert response.status_code == 200, body
        assert body["encoding"] == "cp1250"
        assert body["created"] == len(LATIN)
        assert names(registry) == {email: name for name, email in LATIN}
        fetched = client.get(
            f"/api/v1/organisations/{body['rows'][0]['organisation_id']}", headers=admin
        ).get_json()
        assert fetched["name"] == "Udruženje žena Čačak"
        assert fetched["topics"] == ["human-rights", "youth"]
        assert fetched["language"] == "sr-Latn"

    def test_a_windows_1251_cyrillic_list_round_trips_exactly(
        self, client: FlaskClient, admin: dict[str, str], registry: Registry
    ) -> None:
        response = post_csv(client, admin, csv_of(CYRILLIC).encode("cp1251"))

        assert response.get_json()["encoding"] == "cp1251"
        assert names(registry) == {email: name for name, email in CYRILLIC}

    def test_utf8_with_a_bom_and_commas_as_multipart_upload(
        self, client: FlaskClient, admin: dict[str, str], registry: Registry
    ) -> None:
        data = ("\ufeff" + csv_of(LATIN, sep=",")).encode("utf-8")

        response = client.post(
            IMPORT,
            data={"file": (__import__("io").BytesIO(data), "list.csv")},
            headers=admin,
            content_type="multipart/form-data",
        )

        body = response.get_json()
        assert response.status_code == 200, body
        assert body["encoding"] == "utf-8-sig"
        assert body["columns"]["name"] == "Naziv"
        assert names(registry) == {email: name for name, email in LATIN}

    def test_iso_8859_2_is_read_too(self) -> None:
        text, encoding = importing.decode("Naziv;E-mail\nČačak;c@example.org\n".encode("iso8859_2"))

        assert "Čačak" in text
        assert encoding in ("cp1250", "iso8859_2")


class TestDeduplicationAndDryRun:
    def test_a_dry_run_reports_and_writes_nothing(
        self, client: FlaskClient, admin: dict[str, str], registry: Registry
    ) -> None:
        before = outbox_count(registry)

        response = post_csv(client, admin, csv_of(LATIN).encode(), "dry_run=true")

        body = response.get_json()
        assert body["dry_run"] is True
        assert body["created"] == len(LATIN)
        assert names(registry) == {}
        assert outbox_count(registry) == before

    def test_addresses_are_deduplicated_in_the_file_and_against_the_registry(
        self, client: FlaskClient, admin: dict[str, str], register: Any, registry: Registry
    ) -> None:
        register(email="djaci@example.org", name="Đaci", country="RS", language="sr")
        rows = [*LATIN, ("Druga Čačak", "ZENE@cacak.example.org")]

        body = post_csv(client, admin, csv_of(rows).encode()).get_json()

        outcomes = {(r["line"], r["outcome"], r["reason"]) for r in body["rows"]}
        assert (3, "skipped", "already registered") in outcomes
        assert (6, "skipped", "same address as line 2") in outcomes
        assert body["created"] == 3
        assert names(registry)["djaci@example.org"] == "Đaci"

    def test_existing_update_changes_the_known_organisation_and_says_so(
        self, client: FlaskClient, admin: dict[str, str], register: Any, registry: Registry
    ) -> None:
        register(email="djaci@example.org", name="Đaci", country="RS", language="sr")

        body = post_csv(client, admin, csv_of(LATIN).encode(), "existing=update").get_json()

        assert body["updated"] == 1
        assert names(registry)["djaci@example.org"] == "Ćirilica i đaci"

    def test_imported_rows_record_consent_with_source_import_and_messages_in_the_outbox(
        self, client: FlaskClient, admin: dict[str, str], registry: Registry
    ) -> None:
        post_csv(client, admin, csv_of(LATIN).encode())

        with registry.sessions() as session:
            consents = list(session.scalars(sa.select(Signup)))
        assert {c.consent_source for c in consents} == {"import"}
        assert {c.consent_basis for c in consents} == {"legitimate_interest"}
        assert outbox_count(registry) == len(LATIN)


class TestBadInput:
    @pytest.mark.parametrize(
        ("data", "status", "field"),
        [
            (b"Naziv;Telefon\nX;123\n", 422, "header"),  # no email column
            (b"Name;Email;E-mail\nX;a@example.org;b@example.org\n", 422, "header"),
            (b'Name;Email\n"unterminated;a@example.org\n', 422, "file"),
            (b"\n\n", 422, "file"),
            (b"\xef\xbb\xbfName;Email\n\xff\xfe\x00;a@example.org\n", 422, "file"),
            (b"Name;Email\nA\x00B;a@example.org\n", 422, "file"),
        ],
        ids=["missing-column", "two-email-columns", "malformed", "empty", "bad-bom", "nul"],
    )
    def test_files_that_cannot_be_read_are_a_4xx_naming_the_problem(
        self,
        client: FlaskClient,
        admin: dict[str, str],
        registry: Registry,
        data: bytes,
        status: int,
        field: str,
    ) -> None:
        response = post_csv(client, admin, data)

        assert response.status_code == status, response.get_json()
        body = response.get_json()
        assert field in body["errors"] or "file" in body["errors"]
        assert names(registry) == {}

    def test_rows_with_bad_values_are_skipped_with_their_reason(
        self, client: FlaskClient, admin: dict[str, str], registry: Registry
    ) -> None:
        data = (
            b"Name;Email;Kind;Country;Topics;Language\n"
            b"Good;good@example.org;cso;BA;youth;bs\n"
            b"Bad mail;not-an-address;cso;BA;youth;bs\n"
            b"Bad language;l@example.org;cso;BA;youth;de\n"
            b"Bad country;c@example.org;cso;HR;youth;hr\n"
            b"Bad topic;t@example.org;cso;BA;astrology;bs\n"
            b"Bad kind;k@example.org;club;BA;youth;bs\n"
            b";noname@example.org;cso;BA;youth;bs\n"
            b"Short row;s@example.org\n"
        )

        body = post_csv(client, admin, data).get_json()

        reasons = {r["line"]: r["reason"] for r in body["rows"] if r["outcome"] == "skipped"}
        assert body["created"] == 1
        assert reasons[3].startswith("email:")
        assert "unknown language 'de'" in reasons[4]
        assert "unknown country 'HR'" in reasons[5]
        assert "unknown topic 'astrology'" in reasons[6]
        assert "unknown kind 'club'" in reasons[7]
        assert reasons[8] == "name is empty"
        assert "has 2 fields" in reasons[9]

    def test_a_body_larger_than_the_limit_is_a_413(
        self, client: FlaskClient, admin: dict[str, str]
    ) -> None:
        data = csv_of(LATIN).encode() * 1 + b"x" * (1024 * 1024)

        assert post_csv(client, admin, data).status_code == 413

    def test_a_body_that_is_neither_csv_nor_multipart_is_a_415(
        self, client: FlaskClient, admin: dict[str, str]
    ) -> None:
        response = client.post(IMPORT, json={"rows": []}, headers=admin)

        assert response.status_code == 415

    def test_a_country_editor_imports_only_its_countrys_rows(self, registry: Registry) -> None:
        scope = importing.ImportScope(countries=("BA",), kinds=("cso", "media"))
        data = csv_of(LATIN[:1], country="RS").encode() + b"Ovdje;ovdje@example.org;cso;BA;;bs\r\n"
        with registry.sessions() as session:
            report = importing.import_organisations(session, data, scope=scope, dry_run=True)

        assert [r.outcome for r in report.rows] == ["skipped", "created"]
        assert report.rows[0].reason == "country RS is outside your scope"


class TestCli:
    def test_import_prints_a_table_and_the_counts(
        self, registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("REGISTRY_DATABASE_URL", str(registry.engine.url))
        path = tmp_path / "list.csv"
        path.write_bytes(csv_of(LATIN).encode("cp1250"))

        dry = CliRunner().invoke(cli, ["import", str(path), "--dry-run"])
        real = CliRunner().invoke(cli, ["import", str(path)])
        again = CliRunner().invoke(cli, ["import", str(path), "--quiet"])

        assert dry.exit_code == 0, dry.output
        assert "dry run: would have created 4" in dry.output
        assert "created 4, updated 0, skipped 0" in real.output
        assert "created 0, updated 0, skipped 4" in again.output
        assert names(registry) == {email: name for name, email in LATIN}

    def test_an_unreadable_file_is_a_clear_error(
        self, registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("REGISTRY_DATABASE_URL", str(registry.engine.url))
        path = tmp_path / "list.csv"
        path.write_bytes(b"Telefon\n123\n")

        result = CliRunner().invoke(cli, ["import", str(path)])

        assert result.exit_code != 0
        assert "header: Missing column(s) name, email" in result.output

    def test_signups_purge(self, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("REGISTRY_DATABASE_URL", str(registry.engine.url))

        result = CliRunner().invoke(cli, ["signups", "purge"])

        assert result.exit_code == 0
        assert "purged 0 expired sign-up(s)" in result.output
