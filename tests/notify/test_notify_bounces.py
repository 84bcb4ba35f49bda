"""Bounces and the suppression list: what came back later stops bulk mail, and can be lifted."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from tacso_notify.app import create_app
from tacso_notify.bootstrap import Notify
from tacso_notify.bounces import BOUNCE_REASON, NotAMessage, parse_bounce
from tacso_notify.cli import cli
from tacso_notify.ledger import DeliveryLedger


def dsn(*recipients: tuple[str, str, str]) -> bytes:
    """A delivery status notification (RFC 3464) for (address, action, status) triples."""
    blocks = "\n".join(
        f"Final-Recipient: rfc822; {address}\nAction: {action}\nStatus: {status}\n"
        f"Diagnostic-Code: smtp; {status[0]}50 {status} mailbox problem\n"
        for address, action, status in recipients
    )
    return f"""From: MAILER-DAEMON@mx.example.ba
To: events@tacso.local
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.ba

{blocks}
--B
Content-Type: text/rfc822-headers

From: TACSO Events <events@tacso.local>
Subject: Invitation: Workshop

--B--
""".replace("\n", "\r\n").encode()


@pytest.fixture
def client(notify: Notify) -> FlaskClient:
    return create_app(notify).test_client()


class TestParsing:
    def test_permanent_and_temporary_failures_are_told_apart(self) -> None:
        report = parse_bounce(
            dsn(("Gone@Example.ba", "failed", "5.1.1"), ("full@example.ba", "delayed", "4.2.2"))
        )
        assert report.permanent == ("gone@example.ba",)
        assert report.temporary == ("full@example.ba",)

    def test_a_message_that_is_no_bounce_reports_nothing(self) -> None:
        report = parse_bounce(b"From: a@example.org\r\nSubject: hello\r\n\r\nJust mail.\r\n")
        assert report.permanent == () and report.temporary == ()

    @pytest.mark.parametrize("raw", [b"", b"   \r\n", b"\x00\x01binary"])
    def test_what_is_not_a_message_is_refused(self, raw: bytes) -> None:
        with pytest.raises(NotAMessage):
            parse_bounce(raw)


class TestBouncesApi:
    def test_a_bounce_suppresses_the_failed_address_and_says_what_it_found(
        self, client: FlaskClient, admin: dict[str, str], ledger: DeliveryLedger
    ) -> None:
        body = dsn(("gone@example.ba", "failed", "5.1.1"), ("full@example.ba", "delayed", "4.2.2"))
        response = client.post(
            "/api/v1/bounces", data=body, headers={**admin, "Content-Type": "message/rfc822"}
        )
        assert response.status_code == 200, response.get_json()
        assert response.get_json() == {
            "permanent": ["gone@example.ba"],
            "temporary": ["full@example.ba"],
            "suppressed": 1,
        }
        assert ledger.suppressed(["gone@example.ba", "full@example.ba"]) == {
            "gone@example.ba": BOUNCE_REASON
        }

    def test_a_bounce_for_an_idn_domain_suppresses_the_address_as_registry_stores_it(
        self, client: FlaskClient, admin: dict[str, str], ledger: DeliveryLedger
    ) -> None:
        body = dsn(("info@xn--ene-b3a.example.ba", "failed", "5.1.1"))
        assert client.post("/api/v1/bounces", data=body, headers=admin).status_code == 200
        assert "info@žene.example.ba" in ledger.suppressed(["info@žene.example.ba"])

    def test_an_empty_body_is_a_400_and_no_key_a_401(
        self, client: FlaskClient, admin: dict[str, str]
    ) -> None:
        assert client.post("/api/v1/bounces", data=b"", headers=admin).status_code == 400
        assert client.post("/api/v1/bounces", data=dsn()).status_code == 401


class TestSuppressionsApi:
    def test_add_list_and_lift(
        self, client: FlaskClient, admin: dict[str, str], ledger: DeliveryLedger
    ) -> None:
        created = client.post(
            "/api/v1/suppressions", json={"email": " Press@News.example "}, headers=admin
        )
        assert created.status_code == 201, created.get_json()
        assert created.get_json()["email"] == "press@news.example"
        again = client.post(
            "/api/v1/suppressions", json={"email": "press@news.example"}, headers=admin
        )
        assert again.status_code == 200

        listed = client.get("/api/v1/suppressions?email=news", headers=admin).get_json()
        assert listed["total"] == 1 and listed["items"][0]["email"] == "press@news.example"

        assert (
            client.delete("/api/v1/suppressions/press@news.example", headers=admin).status_code
            == 204
        )
        assert ledger.suppressed(["press@news.example"]) == {}
        assert (
            client.delete("/api/v1/suppressions/press@news.example", headers=admin).status_code
            == 404
        )

    @pytest.mark.parametrize(
        "body",
        [{}, {"email": "no-at-sign"}, {"email": ""}, {"email": "a@b.example", "reason": ""}],
    )
    def test_bad_input_is_a_422(
        self, client: FlaskClient, admin: dict[str, str], body: dict[str, str]
    ) -> None:
        assert client.post("/api/v1/suppressions", json=body, headers=admin).status_code == 422


class TestCommands:
    def test_ingest_list_add_and_lift(
        self, notify: Notify, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("NOTIFY_DATABASE_URL", notify.settings.common.database_url)
        monkeypatch.setenv("ADMIN_API_KEY", "test-admin-key")
        bounce = tmp_path / "bounce.eml"
        bounce.write_bytes(dsn(("gone@example.ba", "failed", "5.1.1")))
        junk = tmp_path / "empty.eml"
        junk.write_bytes(b"")
        runner = CliRunner()

        ingested = runner.invoke(cli, ["bounces", "ingest", str(bounce), str(junk)])
        assert ingested.exit_code == 0, ingested.output
        assert "failed for good: gone@example.ba" in ingested.output
        assert "1 address(es) suppressed" in ingested.output

        assert runner.invoke(cli, ["suppressions", "add", "x@example.org"]).exit_code == 0
        listed = runner.invoke(cli, ["suppressions", "list"]).output
        assert "gone@example.ba" in listed and "x@example.org" in listed
        assert runner.invoke(cli, ["suppressions", "lift", "x@example.org"]).exit_code == 0
        assert runner.invoke(cli, ["suppressions", "lift", "x@example.org"]).exit_code != 0
        assert notify.ledger.suppressed(["x@example.org"]) == {}
