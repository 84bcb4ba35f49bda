"""Specification of notify's HTTP API: the delivery ledger, read-only, behind the admin key."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

from support.messages import event_published
from tacso_notify.app import create_app
from tacso_notify.bootstrap import Notify
from tacso_notify.domain import Recipient
from tacso_notify.ledger import DeliveryLedger
from tacso_shared.contracts import EventPublished

DELIVERIES = "/api/v1/deliveries"
SUMMARY = "/api/v1/deliveries/summary"


def event(event_id: str, revision: int = 1, country: str = "BA") -> EventPublished:
    """A published event (the ledger keeps its id, revision and country)."""
    return event_published(
        event_id=event_id,
        revision=revision,
        country=country,
        title="Workshop",
        type="workshop",
        topics=["youth"],
        starts_at=datetime(2026, 12, 1, 9, tzinfo=UTC),
        ends_at=datetime(2026, 12, 1, 12, tzinfo=UTC),
        organiser_id="o",
        organiser_name="VESTA",
        url=f"http://localhost:5002/events/{event_id}",
    )


def recipients(count: int, prefix: str) -> list[Recipient]:
    return [
        Recipient(organisation_id=f"{prefix}-{n}", name=f"{prefix} {n}", email=f"{prefix}{n}@x.org")
        for n in range(count)
    ]


@pytest.fixture
def client(notify: Notify) -> FlaskClient:
    return create_app(notify).test_client()


def owe(ledger: DeliveryLedger, ev: EventPublished, kind: str, to: list[Recipient]) -> list[int]:
    """Put deliveries of ``kind`` to ``to`` in the ledger (pending, unleased); return their ids."""
    ledger.ensure(ev, kind, to)
    claimed, _ = ledger.claim(ev, kind, [r.organisation_id for r in to], "setup", 60.0)
    ledger.release("setup")
    return [delivery_id for delivery_id, _ in claimed]


@pytest.fixture
def deliveries(ledger: DeliveryLedger) -> dict[str, list[int]]:
    """A ledger with two events' deliveries; delivery ids by group.

    ev-a: 5 invitations (3 sent, 1 failed, 1 pending) and 2 press notices (sent);
    ev-b: 2 invitations (pending).
    """
    invited = owe(ledger, event("ev-a"), "invitation", recipients(5, "cso"))
    noticed = owe(ledger, event("ev-a"), "press_notice", recipients(2, "media"))
    other = owe(ledger, event("ev-b"), "invitation", recipients(2, "cso"))
    ledger.record(invited[:3] + noticed, [(invited[3], "550 5.1.1 no such mailbox")])
    return {"invited": invited, "noticed": noticed, "other": other}


def get_json(client: FlaskClient, admin: dict[str, str], url: str) -> dict[str, Any]:
    response = client.get(url, headers=admin)
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def ids_of(body: dict[str, Any]) -> list[int]:
    return [item["id"] for item in body["items"]]


class TestListDeliveries:
    def test_lists_every_delivery_oldest_first(
        self, client: FlaskClient, admin: dict[str, str], deliveries: dict[str, list[int]]
    ) -> None:
        body = get_json(client, admin, DELIVERIES)

        every = deliveries["invited"] + deliveries["noticed"] + deliveries["other"]
        assert ids_of(body) == sorted(every)
        assert (body["page"], body["page_size"], body["total"]) == (1, 100, 9)

    def test_shows_what_happened_to_a_delivery(
        self, client: FlaskClient, admin: dict[str, str], deliveries: dict[str, list[int]]
    ) -> None:
        [failed] = get_json(client, admin, f"{DELIVERIES}?status=failed")["items"]
        [sent] = get_json(client, admin, f"{DELIVERIES}?organisation_id=cso-0&event_id=ev-a")[
            "items"
        ]

        assert failed["id"] == deliveries["invited"][3]
        assert failed["recipient"] == "cso3@x.org"
        assert failed["last_error"] == "550 5.1.1 no such mailbox"
        assert failed["attempts"] == 1
        assert failed["sent_at"] is None
        assert sent["status"] == "sent"
        assert sent["sent_at"].endswith("+00:00")
        assert (sent["event_id"], sent["revision"], sent["country"]) == ("ev-a", 1, "BA")
        assert sent["kind"] == "invitation"

    @pytest.mark.parametrize(
        ("query", "group", "picked"),
        [
            ("event_id=ev-b", "other", slice(None)),
            ("kind=press_notice", "noticed", slice(None)),
            ("status=pending&event_id=ev-a", "invited", slice(4, 5)),
            ("event_id=ev-a&kind=invitation&status=sent", "invited", slice(0, 3)),
        ],
    )
    def test_filters_by_event_kind_and_status(
        self,
        client: FlaskClient,
        admin: dict[str, str],
        deliveries: dict[str, list[int]],
        query: str,
        group: str,
        picked: slice,
    ) -> None:
        body = get_json(client, admin, f"{DELIVERIES}?{query}")

        assert ids_of(body) == deliveries[group][picked]
        assert body["total"] == len(deliveries[group][picked])

    def test_an_event_without_deliveries_lists_nothing(
        self, client: FlaskClient, admin: dict[str, str], deliveries: dict[str, list[int]]
    ) -> None:
        body = get_json(client, admin, f"{DELIVERIES}?event_id=ev-unknown")

        assert (body["items"], body["total"]) == ([], 0)

    def test_pages_with_page_and_page_size(
        self, client: FlaskClient, admin: dict[str, str], deliveries: dict[str, list[int]]
    ) -> None:
        every = sorted(deliveries["invited"] + deliveries["noticed"] + deliveries["other"])

        pages = [get_json(client, admin, f"{DELIVERIES}?page={n}&page_size=4") for n in (1, 2, 3)]

        assert [ids_of(p) for p in pages] == [every[0:4], every[4:8], every[8:9]]
        assert {p["total"] for p in pages} == {9}

    @pytest.mark.parametrize(
        ("query", "field"),
        [
            ("status=bounced", "status"),
            ("kind=newsletter", "kind"),
            ("page=0", "page"),
            ("page_size=1001", "page_size"),
        ],
    )
    def test_a_bad_filter_or_paging_value_is_422(
        self, client: FlaskClient, admin: dict[str, str], query: str, field: str
    ) -> None:
        response = client.get(f"{DELIVERIES}?{query}", headers=admin)

        assert response.status_code == 422
        assert field in response.get_json()["errors"]["query"]


class TestDeliverySummary:
    def test_counts_one_event_by_kind_and_status(
        self, client: FlaskClient, admin: dict[str, str], deliveries: dict[str, list[int]]
    ) -> None:
        body = get_json(client, admin, f"{SUMMARY}?event_id=ev-a")

        assert body == {
            "event_id": "ev-a",
            "counts": {
                "invitation": {"sent": 3, "failed": 1, "pending": 1},
                "press_notice": {"sent": 2},
            },
        }

    def test_an_unknown_event_has_no_counts(
        self, client: FlaskClient, admin: dict[str, str], deliveries: dict[str, list[int]]
    ) -> None:
        body = get_json(client, admin, f"{SUMMARY}?event_id=ev-unknown")

        assert body == {"event_id": "ev-unknown", "counts": {}}

    def test_the_event_id_is_required(self, client: FlaskClient, admin: dict[str, str]) -> None:
        response = client.get(SUMMARY, headers=admin)

        assert response.status_code == 422
        assert "event_id" in response.get_json()["errors"]["query"]


class TestAuthentication:
    @pytest.mark.parametrize("url", [DELIVERIES, f"{SUMMARY}?event_id=ev-a"])
    def test_without_a_key_is_401_with_a_bearer_challenge(
        self, client: FlaskClient, url: str
    ) -> None:
        response = client.get(url)

        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="tacso"'

    def test_with_a_wrong_key_is_401(self, client: FlaskClient) -> None:
        response = client.get(DELIVERIES, headers={"Authorization": "Bearer not-the-key"})

        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


class TestHealthAndOpenApi:
    def test_healthz_is_200(self, client: FlaskClient) -> None:
        response = client.get("/healthz")

        assert response.status_code == 200
        assert response.get_json() == {"status": "ok"}

    def test_the_openapi_document_lists_the_secured_paths(self, client: FlaskClient) -> None:
        doc = client.get("/openapi.json").get_json()

        assert {"/api/v1/deliveries", "/api/v1/deliveries/summary"} <= set(doc["paths"])
        assert doc["paths"]["/api/v1/deliveries"]["get"]["security"] == [{"bearerAuth": []}]
        assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_the_api_process_does_not_import_the_worker_machinery() -> None:
    """gunicorn loads the app: the SMTP pool, consumer, renderer and handlers stay out of it."""
    code = (
        "import sys, tacso_notify.app; "
        "print(sorted(m for m in sys.modules if m.startswith(('tacso_notify.', 'tacso_shared.'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    for module in (
        "tacso_notify.handlers",
        "tacso_notify.sending",
        "tacso_notify.rendering",
        "tacso_notify.workers",
        "tacso_shared.consumer",
    ):
        assert f"'{module}'" not in loaded, f"{module} is imported by the API: {loaded}"
    assert "'tacso_notify.api'" in loaded


class TestEventReport:
    URL = "/api/v1/events/ev-a/report"

    def test_json_counts_failures_and_timeline(
        self,
        client: FlaskClient,
        admin: dict[str, str],
        deliveries: dict[str, list[int]],
        ledger: DeliveryLedger,
    ) -> None:
        ledger.suppress([("cso3@x.org", "550")])
        report = get_json(client, admin, self.URL)
        assert report["counts"] == {
            "invitation": {"sent": 3, "failed": 1, "pending": 1},
            "press_notice": {"sent": 2},
        }
        assert report["total"] == 7
        assert {(r["kind"], r["status"], r["reason"], r["count"]) for r in report["rows"]} >= {
            ("invitation", "failed", "550 5.1.1 no such mailbox", 1)
        }
        assert sum(p["sent"] for p in report["timeline"]) == 5
        assert report["suppressed_recipients"] == 1
        assert report["first_sent_at"] is not None

    def test_csv_opens_with_the_csv_module_and_sums_to_the_ledger(
        self, client: FlaskClient, admin: dict[str, str], deliveries: dict[str, list[int]]
    ) -> None:
        for request in (
            {"query_string": {"format": "csv"}},
            {"headers": {"Accept": "text/csv"}},
        ):
            response = client.get(
                self.URL,
                headers={**admin, **request.get("headers", {})},
                query_string=request.get("query_string"),
            )
            assert response.status_code == 200
            assert response.mimetype == "text/csv"
            assert response.data.startswith("\ufeff".encode())
            rows = list(csv.DictReader(io.StringIO(response.data.decode("utf-8-sig"))))
            assert set(rows[0]) == {"kind", "status", "reason", "count"}
            assert sum(int(r["count"]) for r in rows) == 7
            failed = [r for r in rows if r["status"] == "failed"]
            assert failed == [
                {
                    "kind": "invitation",
                    "status": "failed",
                    "reason": "550 5.1.1 no such mailbox",
                    "count": "1",
                }
            ]

    def test_html_page_has_the_counts_and_a_server_side_chart(
        self, client: FlaskClient, admin: dict[str, str], deliveries: dict[str, list[int]]
    ) -> None:
        response = client.get(self.URL, headers={**admin, "Accept": "text/html"})
        assert response.status_code == 200 and response.mimetype == "text/html"
        page = response.data.decode()
        assert "<svg" in page and "<polyline" in page and "<script" not in page
        assert "550 5.1.1 no such mailbox" in page
        assert "<main>" in page and 'lang="en"' in page

    def test_the_rsvp_funnel_counts_invitations_then_registrations_by_status(
        self,
        client: FlaskClient,
        admin: dict[str, str],
        notify: Notify,
        deliveries: dict[str, list[int]],
    ) -> None:
        from tacso_notify.mirror import record_registration
        from tacso_shared.contracts import RegistrationChanged
        from tacso_shared.db import transaction

        answers = [("o1", "confirmed", 1), ("o2", "confirmed", 1), ("o3", "waitlisted", 1)]
        answers += [("o4", "declined", 1), ("o2", "cancelled", 2)]  # o2 cancels later
        with transaction(notify.sessions) as session:
            for org, status, sequence in answers:
                record_registration(
                    session,
                    RegistrationChanged(
                        f"r-{org}", org, status, 1, sequence, datetime.now(UTC), event("ev-a")
                    ),
                )

        report = get_json(client, admin, self.URL)
        page = client.get(self.URL, headers={**admin, "Accept": "text/html"}).data.decode()

        assert report["funnel"] == {
            "invited": 3,
            "confirmed": 1,
            "offered": 0,
            "waitlisted": 1,
            "declined": 1,
            "cancelled": 1,
            "expired": 0,
        }
        assert 'aria-label="RSVP funnel"' in page and ">invited<" in page

    def test_an_event_without_deliveries_is_a_404_and_a_bad_format_a_422(
        self, client: FlaskClient, admin: dict[str, str], deliveries: dict[str, list[int]]
    ) -> None:
        assert client.get("/api/v1/events/nope/report", headers=admin).status_code == 404
        bad = client.get(self.URL, headers=admin, query_string={"format": "xlsx"})
        assert bad.status_code == 422
        assert client.get(self.URL).status_code == 401
