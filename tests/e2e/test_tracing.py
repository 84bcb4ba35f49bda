"""Tracing and metrics on the real processes: one correlation id from the POST to every mail.

A ``POST /api/v1/events`` without ``X-Correlation-ID`` gets one generated at the edge; the same id
is in the events API's log line, the events relay's, each invitation worker line of the fan-out
(its first page and the next, handed on as a page task, and one line per SMTP acceptance), and
the ``X-Correlation-ID`` header of every mail of that fan-out. ``grep <id>`` over the logs shows
the whole path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from support.smtp import RecordingSMTPServer
from support.stack import ProcessSpec, Stack, free_port, running_stack
from support.waiting import wait_until
from tacso_notify.audience import FIRST_PAGE_SIZE

COUNTRY = "MK"
METRICS_PORTS = {"notify-invitations": free_port(), "events-relay": free_port()}


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, smtp_server: RecordingSMTPServer
) -> Iterator[Stack]:
    """The stack on SQLite, with the metrics ports of an invitation worker and a relay open."""

    def open_metrics(stack: Stack) -> None:
        for name, port in METRICS_PORTS.items():
            spec = stack.specs[name]
            stack.specs[name] = ProcessSpec(spec.process, spec.port, {"METRICS_PORT": str(port)})

    workdir: Path = tmp_path_factory.mktemp("stack-observability")
    with running_stack(
        workdir, "sqlite", smtp_server.host, smtp_server.port, configure=open_metrics
    ) as stack:
        yield stack


def log_records(stack: Stack, name: str) -> list[dict[str, Any]]:
    """The JSON log lines a process wrote (anything else it printed is skipped)."""
    records = []
    for line in stack.log(name).splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def lines_with(stack: Stack, name: str, correlation_id: str) -> list[dict[str, Any]]:
    return [r for r in log_records(stack, name) if r.get("correlation_id") == correlation_id]


def metric(url: str, name: str, labels: dict[str, str]) -> float | None:
    text = requests.get(url, timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    return None


def test_one_correlation_id_follows_an_event_from_the_post_to_every_mail(
    stack: Stack, smtp_server: RecordingSMTPServer
) -> None:
    # More than the first page: the second page travels as a page task and must carry the id.
    audience = FIRST_PAGE_SIZE + 3
    stack.register_many(audience, "cso", COUNTRY, ["youth"], "trace-mk")
    organiser = stack.organisation(COUNTRY, "resource_centre")
    body = {
        "title": "Youth forum",
        "type": "conference",
        "country": COUNTRY,
        "topics": ["youth"],
        "starts_at": "2026-12-15T09:00:00+00:00",
        "ends_at": "2026-12-15T15:30:00+00:00",
        "venue": {"name": "Hotel Bristol", "city": "Skopje"},
        "organiser_id": organiser["id"],
    }

    response = stack.post("events", "/api/v1/events", body)

    assert response.status_code == 201, response.text
    assert "X-Correlation-ID" not in response.request.headers
    cid = response.headers["X-Correlation-ID"]
    event_id = response.json()["id"]
    stack.wait_all_sent(event_id, "invitation", audience)
    mail = smtp_server.wait_for(
        audience, predicate=lambda m: m.header("X-TACSO-Event-Id") == event_id
    )
    assert len(mail) == audience
    assert {m.header("X-Correlation-ID") for m in mail} == {cid}

    [api_line] = lines_with(stack, "events", cid)
    assert api_line["message"].startswith("POST /api/v1/events 201")
    assert (api_line["service"], api_line["role"], api_line["level"]) == ("events", "api", "INFO")
    relay_lines = lines_with(stack, "events-relay", cid)
    assert any(event_id in r["message"] or "published" in r["message"] for r in relay_lines)
    assert {r["role"] for r in relay_lines} == {"relay"}

    def worker_pages() -> set[int] | None:
        pages = {
            int(r["message"].split(" page ")[1].split()[0])
            for r in lines_with(stack, "notify-invitations", cid)
            if r["message"].startswith(f"invitation for event {event_id}")
        }
        return pages if pages == {1, 2} else None

    # Both pages were handled (and logged) under the same id.
    wait_until(worker_pages, timeout=30, message="both pages logged under the correlation id")
    # And every SMTP acceptance, in one line per ledger write, under the same id.
    accepted = [
        r
        for r in lines_with(stack, "notify-invitations", cid)
        if r["message"].endswith("accepted by SMTP")
    ]
    prefix = f"invitation of event {event_id}: deliveries "
    assert accepted and all(r["message"].startswith(prefix) for r in accepted)
    ids = [
        int(i)
        for r in accepted
        for i in r["message"][len(prefix) :].removesuffix(" accepted by SMTP").split(", ")
    ]
    assert len(ids) == len(set(ids)) == audience


def test_a_client_correlation_id_is_kept_all_the_way(
    stack: Stack, smtp_server: RecordingSMTPServer
) -> None:
    stack.register_many(2, "media", COUNTRY, [], "trace-media")
    organiser = stack.organisation(COUNTRY, "resource_centre")
    body = {
        "title": "Press day",
        "type": "expo",
        "country": COUNTRY,
        "topics": [],
        "starts_at": "2026-12-16T09:00:00+00:00",
        "ends_at": "2026-12-16T12:00:00+00:00",
        "venue": {"name": "City hall", "city": "Skopje"},
        "organiser_id": organiser["id"],
    }
    response = stack.http.post(
        stack.url("events", "/api/v1/events"),
        json=body,
        headers={"X-Correlation-ID": "client-trace-7"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    assert response.headers["X-Correlation-ID"] == "client-trace-7"
    event_id = response.json()["id"]

    notices = smtp_server.wait_for(
        2,
        predicate=lambda m: (
            m.header("X-TACSO-Event-Id") == event_id and m.header("X-TACSO-Kind") == "press_notice"
        ),
    )
    assert {m.header("X-Correlation-ID") for m in notices} == {"client-trace-7"}
    wait_until(
        lambda: lines_with(stack, "notify-press-notices", "client-trace-7"),
        timeout=30,
        message="the press-notice worker logged under the client's id",
    )


def test_workers_relays_and_apis_serve_their_metrics(stack: Stack) -> None:
    worker = f"http://127.0.0.1:{METRICS_PORTS['notify-invitations']}/metrics"
    relay = f"http://127.0.0.1:{METRICS_PORTS['events-relay']}/metrics"
    sent = {"kind": "invitation", "country": COUNTRY, "outcome": "sent"}

    assert (metric(worker, "tacso_mails_total", sent) or 0) >= FIRST_PAGE_SIZE
    assert metric(worker, "tacso_fanout_duration_seconds_count", {"kind": "invitation"})
    handled = metric(
        worker, "tacso_messages_handled_total", {"queue": f"notify.invitations.{COUNTRY}"}
    )
    assert handled is not None and handled >= 2
    assert metric(relay, "tacso_outbox_pending_messages", {"service": "events"}) == 0
    assert metric(relay, "tacso_outbox_oldest_pending_age_seconds", {"service": "events"}) == 0
    events_api = stack.url("events", "/metrics")
    created = {"route": "/api/v1/events", "method": "POST", "status": "201"}
    assert (metric(events_api, "tacso_http_requests_total", created) or 0) >= 1
