"""The spine, end to end: organisations register, an RC publishes an event, mail flows.

Each test uses a country of its own, so its audience is exactly the organisations it registered.
"""

from __future__ import annotations

import functools
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import icalendar
import pika
import sqlalchemy as sa

from support.infra import amqp_url_via
from support.smtp import RecordingSMTPServer
from support.stack import Stack
from support.tcp_proxy import TcpProxy
from support.waiting import wait_until
from tacso_devtools.smtp_catcher import ReceivedMail
from tacso_shared.db import make_engine


def _email(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.org"


def register_many(
    stack: Stack, n: int, kind: str, country: str, topics: list[str], tag: str
) -> list[dict[str, Any]]:
    return [
        stack.register(
            name=f"{tag} {i}",
            kind=kind,
            country=country,
            email=_email(tag),
            language="en",
            topics=topics,
        )
        for i in range(n)
    ]


def event_body(stack: Stack, country: str, topics: list[str], **over: Any) -> dict[str, Any]:
    organiser = stack.organisation(
        country, "resource_centre" if country != "AL" else "tacso_office"
    )
    body = {
        "title": f"Human rights workshop {uuid.uuid4().hex[:6]}",
        "type": "workshop",
        "country": country,
        "topics": topics,
        "starts_at": "2026-12-15T09:00:00+00:00",
        "ends_at": "2026-12-15T15:30:00+00:00",
        "venue": {"name": "Hotel Europe", "address": "Vladislava Skarića 5", "city": "Sarajevo"},
        "organiser_id": organiser["id"],
    }
    body.update(over)
    return body


def publish(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    response = stack.post("events", "/api/v1/events", body)
    assert response.status_code == 201, response.text
    event: dict[str, Any] = response.json()
    assert event["status"] == "published"
    return event


def mail_of(
    smtp: RecordingSMTPServer, event_id: str, kind: str | None = None
) -> list[ReceivedMail]:
    return [
        m
        for m in smtp.messages
        if m.header("X-TACSO-Event-Id") == event_id
        and (kind is None or m.header("X-TACSO-Kind") == kind)
    ]


def wait_for_mail(
    smtp: RecordingSMTPServer, event_id: str, kind: str, count: int, timeout: float = 60
) -> list[ReceivedMail]:
    return smtp.wait_for(
        count,
        timeout=timeout,
        predicate=lambda m: (
            m.header("X-TACSO-Event-Id") == event_id and m.header("X-TACSO-Kind") == kind
        ),
    )


def wait_all_sent(stack: Stack, event_id: str, expected: int) -> list[dict[str, Any]]:
    def all_sent() -> list[dict[str, Any]] | None:
        rows = stack.deliveries(event_id)
        done = len(rows) == expected and all(r["status"] == "sent" for r in rows)
        return rows if done else None

    rows = wait_until(all_sent, timeout=30, message=f"ledger of {event_id}: {expected} sent")
    assert rows is not None
    return rows


class TestFanOut:
    def test_a_ba_event_reaches_exactly_the_matching_ba_csos_and_ba_media(
        self, stack: Stack, smtp_server: RecordingSMTPServer
    ) -> None:
        hr_ba = register_many(stack, 10, "cso", "BA", ["human-rights"], "hr-ba")
        register_many(stack, 10, "cso", "BA", ["social-entrepreneurship"], "se-ba")
        register_many(stack, 5, "cso", "RS", ["human-rights"], "hr-rs")
        media_ba = register_many(stack, 3, "media", "BA", [], "media-ba")
        register_many(stack, 2, "media", "RS", [], "media-rs")

        event = publish(stack, event_body(stack, "BA", ["human-rights"]))

        invitations = wait_for_mail(smtp_server, event["id"], "invitation", 10)
        notices = wait_for_mail(smtp_server, event["id"], "press_notice", 3)
        rows = wait_all_sent(stack, event["id"], 13)

        assert sorted(m.rcpt_tos[0] for m in invitations) == sorted(o["email"] for o in hr_ba)
        assert sorted(m.rcpt_tos[0] for m in notices) == sorted(o["email"] for o in media_ba)
        assert len(mail_of(smtp_server, event["id"])) == 13, "nobody else gets anything"
        assert {(r["recipient"], r["kind"]) for r in rows} == {
            *((o["email"], "invitation") for o in hr_ba),
            *((o["email"], "press_notice") for o in media_ba),
        }
        assert all(r["sent_at"] for r in rows)
        for kind, expected in (("invitation", 10), ("press_notice", 3)):
            listed = stack.get(
                "notify", "/api/v1/deliveries", event_id=event["id"], kind=kind, status="sent"
            )
            assert listed.json()["total"] == expected

    def test_the_invitation_shows_title_local_time_venue_and_a_calendar_entry(
        self, stack: Stack, smtp_server: RecordingSMTPServer
    ) -> None:
        csos = register_many(stack, 1, "cso", "TR", ["migration"], "tr-migration")
        event = publish(
            stack,
            event_body(
                stack,
                "TR",
                ["migration"],
                title="Göç ve mülteci yanıtı eğitimi",
                venue={"name": "STGM Hall", "address": "Kızılay", "city": "Ankara"},
            ),
        )
        (mail,) = wait_for_mail(smtp_server, event["id"], "invitation", 1)
        msg = mail.message
        assert mail.rcpt_tos == (csos[0]["email"],)
        assert event["title"] in str(msg["Subject"])
        text = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
        assert text is not None and html is not None
        body = text.get_content()
        assert event["title"] in body
        # 09:00 UTC is 12:00 in Istanbul (UTC+3, no daylight saving).
        assert "12:00" in body and "Türkiye Standard Time" in body, "local time, zone named"
        assert "Europe/" not in body, "never an IANA id"
        assert "STGM Hall" in body and "Ankara" in body
        calendars = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
        assert len(calendars) == 1
        assert calendars[0].get_param("method") == "REQUEST"
        payload = calendars[0].get_payload(decode=True)
        assert isinstance(payload, bytes)
        cal = icalendar.Calendar.from_ical(payload)
        assert str(cal["METHOD"]) == "REQUEST"
        (vevent,) = cal.walk("VEVENT")
        assert vevent.decoded("DTSTART") == datetime(2026, 12, 15, 9, 0, tzinfo=UTC)
        assert vevent.decoded("DTEND") == datetime(2026, 12, 15, 15, 30, tzinfo=UTC)
        assert event["id"] in str(vevent["UID"])


class TestIndependence:
    def test_invitations_flow_while_the_press_worker_is_stopped_and_press_notices_follow(
        self, stack: Stack, smtp_server: RecordingSMTPServer
    ) -> None:
        register_many(stack, 4, "cso", "ME", ["youth"], "me-youth")
        register_many(stack, 2, "media", "ME", [], "me-media")
        codes = stack.stop("notify-press-notices")
        assert codes == {"notify-press-notices": 0}, "SIGTERM stops a worker cleanly"
        try:
            event = publish(stack, event_body(stack, "ME", ["youth"]))
            wait_for_mail(smtp_server, event["id"], "invitation", 4)
            assert mail_of(smtp_server, event["id"], "press_notice") == []
        finally:
            stack.start("notify-press-notices")
        wait_for_mail(smtp_server, event["id"], "press_notice", 2)
        wait_all_sent(stack, event["id"], 6)


class TestOutbox:
    def test_an_event_created_while_the_broker_is_unreachable_goes_out_once_it_is_back(
        self, stack: Stack, smtp_server: RecordingSMTPServer
    ) -> None:
        register_many(stack, 3, "cso", "MK", ["environment"], "mk-env")
        broker = stack.env["AMQP_URL"].split("@", 1)[1].split("/", 1)[0]
        host, port = broker.split(":")
        with TcpProxy(host, int(port)) as proxy:
            stack.stop("events-relay")
            stack.start(
                "events-relay",
                env={"AMQP_URL": amqp_url_via(stack.env["AMQP_URL"], "127.0.0.1", proxy.port)},
            )
            try:
                proxy.disable()
                event = publish(stack, event_body(stack, "MK", ["environment"]))
                engine = make_engine(stack.env["EVENTS_DATABASE_URL"])
                try:

                    def outbox_row() -> Any:
                        with engine.connect() as conn:
                            return conn.execute(
                                sa.text(
                                    "SELECT published_at, attempts FROM outbox WHERE body LIKE :id"
                                ),
                                {"id": f'%"event_id":"{event["id"]}"%'},
                            ).one()

                    # The relay tried and failed; the message waits in the outbox.
                    row = wait_until(lambda: (r := outbox_row()).attempts >= 1 and r, timeout=30)
                    assert row.published_at is None
                    assert mail_of(smtp_server, event["id"]) == []
                    proxy.enable()
                    wait_for_mail(smtp_server, event["id"], "invitation", 3)
                    assert wait_until(lambda: outbox_row().published_at, timeout=30)
                finally:
                    engine.dispose()
            finally:
                stack.stop("events-relay")
                stack.start("events-relay")


def _publish_raw(
    amqp_url: str, routing_key: str, body: bytes, message_id: str | None = None
) -> None:
    """Publish with pika, an AMQP client independent of the one the services use."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            "tacso",
            routing_key,
            body,
            pika.BasicProperties(
                content_type="application/json", delivery_mode=2, message_id=message_id
            ),
            mandatory=True,
        )
    finally:
        connection.close()


def _queue_depth(amqp_url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        result = connection.channel().queue_declare(queue, passive=True)
        count: int = result.method.message_count
        return count
    finally:
        connection.close()


def _holds(amqp_url: str, queue: str, count: int) -> bool:
    return _queue_depth(amqp_url, queue) == count


def _outbox_body(stack: Stack, event_id: str) -> bytes:
    engine = make_engine(stack.env["EVENTS_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            body: str = conn.execute(
                sa.text("SELECT body FROM outbox WHERE body LIKE :id"),
                {"id": f'%"event_id":"{event_id}"%'},
            ).scalar_one()
            return body.encode()
    finally:
        engine.dispose()


class TestIdempotency:
    def test_the_same_envelope_published_again_sends_nothing_new(
        self, stack: Stack, smtp_server: RecordingSMTPServer
    ) -> None:
        register_many(stack, 3, "cso", "AL", ["advocacy"], "al-adv")
        register_many(stack, 1, "media", "AL", [], "al-media")
        first = publish(stack, event_body(stack, "AL", ["advocacy"]))
        wait_for_mail(smtp_server, first["id"], "invitation", 3)
        wait_for_mail(smtp_server, first["id"], "press_notice", 1)
        wait_all_sent(stack, first["id"], 4)

        body = _outbox_body(stack, first["id"])
        _publish_raw(stack.env["AMQP_URL"], "event.published.AL", body, json.loads(body)["id"])
        # Queues are first in, first out: once a later event's mail is out, the copy was handled.
        second = publish(stack, event_body(stack, "AL", ["advocacy"]))
        wait_for_mail(smtp_server, second["id"], "invitation", 3)
        wait_for_mail(smtp_server, second["id"], "press_notice", 1)

        assert len(mail_of(smtp_server, first["id"])) == 4
        assert len(stack.deliveries(first["id"])) == 4


class TestPoisonMessages:
    def test_bad_messages_go_to_the_dead_letter_queues_and_the_consumers_keep_working(
        self, stack: Stack, smtp_server: RecordingSMTPServer
    ) -> None:
        register_many(stack, 2, "cso", "XK", ["gender-equality"], "xk-ge")
        register_many(stack, 1, "media", "XK", [], "xk-media")
        url = stack.env["AMQP_URL"]
        wrong_schema = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "/test",
            "type": "org.tacso.events.event.published.v1",
            "time": datetime.now(UTC).isoformat(),
            "data": {"event_id": "x", "title": ""},
        }
        _publish_raw(url, "event.published.XK", b"this is not json {")
        _publish_raw(url, "event.published.XK", json.dumps(wrong_schema).encode())

        event = publish(stack, event_body(stack, "XK", ["gender-equality"]))
        wait_for_mail(smtp_server, event["id"], "invitation", 2)
        wait_for_mail(smtp_server, event["id"], "press_notice", 1)
        for queue in ("notify.invitations.dead", "notify.press_notices.dead"):
            wait_until(functools.partial(_holds, url, queue, 2), timeout=30, message=queue)
