"""Signed webhooks: subscriptions through the API, signing per Standard Webhooks, and delivery from
the webhook queue with retries scheduled in the database (real RabbitMQ, a real HTTP receiver)."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from click.testing import CliRunner
from flask.testing import FlaskClient
from kombu import Connection
from standardwebhooks.webhooks import Webhook
from werkzeug.wrappers import Request, Response

from support.infra import postgres_databases
from support.messages import event_published
from support.waiting import wait_until
from tacso_notify import webhooks
from tacso_notify.app import create_app
from tacso_notify.bootstrap import Notify, NotifySettings, apply_migrations, bootstrap
from tacso_notify.cli import cli
from tacso_notify.models import WebhookDelivery, WebhookSubscription
from tacso_notify.subscriptions import WEBHOOKS
from tacso_notify.workers import build_webhook_worker
from tacso_shared.contracts import RegistrationChanged, envelope_of
from tacso_shared.envelope import Envelope
from tacso_shared.messaging import ConfirmingPublisher, OutgoingMessage
from tacso_shared.topology import declare_topology

ADMIN_KEY = "test-admin-key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def _settings(tmp_path: Path, **extra: str) -> NotifySettings:
    return NotifySettings.load(
        {
            "VAR_DIR": str(tmp_path),
            "NOTIFY_DATABASE_URL": f"sqlite:///{tmp_path / 'notify.sqlite3'}",
            "ADMIN_API_KEY": ADMIN_KEY,
            "WEBHOOKS_ALLOW_HTTP": "true",
            "WEBHOOKS_ALLOW_PRIVATE": "true",
            "WEBHOOK_RETRY_SCHEDULE": "0.3,0.3,0.3",
            "WEBHOOK_POLL_INTERVAL": "0.1",
            "RATE_LIMITS": "false",
            **extra,
        }
    )


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[Notify]:
    settings = _settings(tmp_path)
    apply_migrations(settings.common)
    wired = bootstrap(settings)
    yield wired
    wired.engine.dispose()


@pytest.fixture
def client(notify: Notify) -> FlaskClient:
    return create_app(notify).test_client()


@dataclass
class Receiver:
    """An HTTP receiver that answers with the next status of ``script`` (then the last one)."""

    script: list[int]
    received: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        with self.lock:
            index = len(self.received)
            status = self.script[min(index, len(self.script) - 1)]
            self.received.append((dict(request.headers), request.get_data(), status))
        return Response("ok" if status < 300 else "no", status=status)(environ, start_response)

    def delivered(self) -> list[tuple[dict[str, str], bytes, int]]:
        with self.lock:
            return [r for r in self.received if 200 <= r[2] < 300]


def _subscribe(client: FlaskClient, url: str, **body: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/webhooks",
        json={"url": url, "event_types": ["event.published"], "countries": ["BA"], **body},
        headers=ADMIN,
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    created: dict[str, Any] = response.get_json()
    return created


def _published(country: str = "BA") -> Envelope:
    event = event_published(
        event_id=str(uuid.uuid4()),
        revision=1,
        title="Radionica o ljudskim pravima",
        type="workshop",
        country=country,
        topics=["human-rights"],
        starts_at=datetime(2026, 12, 15, 9, tzinfo=UTC),
        ends_at=datetime(2026, 12, 15, 15, tzinfo=UTC),
        organiser_id="org-1",
        organiser_name="VESTA",
        url="http://events.example.org/e/1",
    )
    return envelope_of(event, "tacso-events", correlation_id="corr-webhook-test")


def _publish(amqp_url: str, *envelopes: Envelope, routing_keys: list[str] | None = None) -> None:
    messages = [
        OutgoingMessage(
            message_id=env.id,
            message_type=env.type,
            routing_key=(routing_keys or [])[i] if routing_keys else "event.published.BA",
            body=env.to_json().encode(),
            correlation_id=env.correlationid,
        )
        for i, env in enumerate(envelopes)
    ]
    with Connection(amqp_url) as conn:
        confirmed = ConfirmingPublisher(conn).publish_batch(messages)
    assert len(confirmed) == len(messages)


# ---- signing ---------------------------------------------------------------------------------
class TestSigning:
    def test_the_specifications_test_vector(self) -> None:
        # From the Standard Webhooks specification's reference libraries.
        secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        signature = webhooks.sign(
            secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}'
        )

        assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

    def test_the_standardwebhooks_verifier_accepts_our_headers(self) -> None:
        secret = webhooks.new_secret()
        body = json.dumps({"type": "event.published", "data": {"title": "Žene"}})

        headers = webhooks.signed_headers(secret, "msg-1", body)

        assert Webhook(secret).verify(body, headers) == json.loads(body)

    def test_a_fresh_secret_is_whsec_and_32_random_bytes(self) -> None:
        secret = webhooks.new_secret()

        assert secret.startswith("whsec_")
        assert len(webhooks._key(secret)) == 32
        assert secret != webhooks.new_secret()


HOOK = "https://hooks.example.org/x"
PUBLIC_ADDRESS = "93.184.215.14"


class TestUrlChecks:
    settings = webhooks.WebhookSettings()

    @staticmethod
    def resolver(addresses: list[str]) -> Callable[[str], list[str]]:
        return lambda host: addresses

    @pytest.mark.parametrize(
        "address", ["127.0.0.1", "10.1.2.3", "192.168.0.5", "169.254.169.254", "::1", "fd00::1"]
    )
    def test_a_private_or_loopback_address_is_refused(self, address: str) -> None:
        with pytest.raises(webhooks.UnsafeURL, match="public addresses only"):
            webhooks.check_url(
                "https://hooks.example.org/x", self.settings, self.resolver([address])
            )

    def test_a_public_address_is_accepted(self) -> None:
        webhooks.check_url(
            "https://hooks.example.org/x", self.settings, self.resolver(["93.184.215.14"])
        )

    def test_plain_http_is_refused_unless_allowed(self) -> None:
        with pytest.raises(webhooks.UnsafeURL, match="scheme must be https"):
            webhooks.check_url(
                "http://hooks.example.org/x", self.settings, self.resolver(["93.184.215.14"])
            )

    def test_a_host_that_does_not_resolve_is_refused(self) -> None:
        with pytest.raises(webhooks.UnsafeURL, match="does not resolve"):
            webhooks.check_url("https://nowhere.invalid/x", self.settings)

    def test_private_addresses_pass_when_allowed(self) -> None:
        allowed = webhooks.WebhookSettings(allow_private=True, allow_http=True)

        webhooks.check_url("http://127.0.0.1:9/x", allowed)


# ---- the API ---------------------------------------------------------------------------------
class TestSubscriptionApi:
    def test_a_subscription_shows_its_secret_once(self, client: FlaskClient) -> None:
        created = _subscribe(client, "http://127.0.0.1:9/hook")

        assert created["secret"].startswith("whsec_")
        shown = client.get(f"/api/v1/webhooks/{created['id']}", headers=ADMIN).get_json()
        assert "secret" not in shown
        assert shown["event_types"] == ["event.published"]
        assert shown["countries"] == ["BA"]
        listed = client.get("/api/v1/webhooks", headers=ADMIN).get_json()["items"]
        assert [s["id"] for s in listed] == [created["id"]]
        assert all("secret" not in s for s in listed)

    def test_delete_removes_it(self, client: FlaskClient) -> None:
        created = _subscribe(client, "http://127.0.0.1:9/hook")

        assert client.delete(f"/api/v1/webhooks/{created['id']}", headers=ADMIN).status_code == 204
        assert client.get(f"/api/v1/webhooks/{created['id']}", headers=ADMIN).status_code == 404

    def test_creating_is_audited_without_the_secret(self, client: FlaskClient) -> None:
        created = _subscribe(client, "http://127.0.0.1:9/hook")

        audit = client.get("/api/v1/audit", headers=ADMIN).get_json()["items"]
        entry = next(e for e in audit if e["action"] == "webhook.create")
        assert entry["resource_id"] == created["id"]
        assert created["secret"] not in json.dumps(audit)

    @pytest.mark.parametrize(
        ("body", "field_name"),
        [
            ({"url": "not a url"}, "url"),
            ({"url": "ftp://127.0.0.1/x"}, "url"),
            ({"event_types": ["event.deleted"]}, "event_types"),
            ({"event_types": []}, "event_types"),
            ({"countries": ["XX"]}, "countries"),
            ({"countries": "BA"}, "countries"),
        ],
    )
    def test_bad_input_is_a_422_naming_the_field(
        self, client: FlaskClient, body: dict[str, Any], field_name: str
    ) -> None:
        response = client.post(
            "/api/v1/webhooks",
            json={"url": "http://127.0.0.1:9/h", "event_types": ["event.published"], **body},
            headers=ADMIN,
        )

        assert response.status_code == 422, response.get_data(as_text=True)
        assert field_name in response.get_json()["errors"]["json"]

    def test_a_private_address_is_a_422_unless_allowed(self, tmp_path: Path) -> None:
        settings = _settings(tmp_path, WEBHOOKS_ALLOW_PRIVATE="false")
        apply_migrations(settings.common)
        strict = bootstrap(settings)
        try:
            response = (
                create_app(strict)
                .test_client()
                .post(
                    "/api/v1/webhooks",
                    json={"url": "http://127.0.0.1:8080/h", "event_types": ["event.published"]},
                    headers=ADMIN,
                )
            )
        finally:
            strict.engine.dispose()

        assert response.status_code == 422
        assert "public addresses only" in response.get_json()["errors"]["json"]["url"][0]

    def test_an_unknown_subscription_is_a_404(self, client: FlaskClient) -> None:
        for path in ("", "/deliveries"):
            assert client.get(f"/api/v1/webhooks/nope{path}", headers=ADMIN).status_code == 404
        assert client.post("/api/v1/webhooks/nope/enable", headers=ADMIN).status_code == 404


# ---- from a message to signed POSTs ------------------------------------------------------------
def _registration(status: str) -> Envelope:
    published = _published()
    event = event_published(**{**_event_fields(published)})
    change = RegistrationChanged(
        registration_id=str(uuid.uuid4()),
        organisation_id="org-2",
        status=status,
        seats=1,
        sequence=1,
        changed_at=datetime.now(UTC),
        event=event,
    )
    return envelope_of(change, "tacso-events")


def _event_fields(envelope: Envelope) -> dict[str, Any]:
    data = dict(envelope.data)
    for key in ("starts_at", "ends_at"):
        data[key] = datetime.fromisoformat(data[key])
    data.pop("translations", None)
    return {k: v for k, v in data.items() if v is not None}


class TestRecording:
    def test_one_row_per_matching_subscription_and_message_even_when_redelivered(
        self, client: FlaskClient, notify: Notify
    ) -> None:
        ba = _subscribe(client, "http://127.0.0.1:9/a")
        _subscribe(client, "http://127.0.0.1:9/b", countries=["RS"])
        regs = _subscribe(client, "http://127.0.0.1:9/c", event_types=["registration.*"])
        envelope = _published()

        first = webhooks.record_message(notify.sessions, envelope, "BA")
        again = webhooks.record_message(notify.sessions, envelope, "BA")
        confirmed = webhooks.record_message(notify.sessions, _registration("confirmed"), "BA")

        assert len(first) == 1
        assert again == []
        assert len(confirmed) == 1
        with notify.sessions() as session:
            rows = session.scalars(sa.select(WebhookDelivery)).all()
        assert {(r.subscription_id, r.event_type) for r in rows} == {
            (ba["id"], "event.published"),
            (regs["id"], "registration.confirmed"),
        }


@pytest.fixture
def run_webhook_worker(notify: Notify, amqp_url: str) -> Iterator[Callable[[], None]]:
    """Start a webhook worker (BA's queue) on the test's virtual host, in a thread."""
    settings = notify.settings
    wired = Notify(
        settings=NotifySettings(
            **{
                **{f: getattr(settings, f) for f in settings.__dataclass_fields__},
                "common": type(settings.common)(
                    **{
                        **{
                            f: getattr(settings.common, f)
                            for f in settings.common.__dataclass_fields__
                        },
                        "amqp_url": amqp_url,
                    }
                ),
            }
        ),
        engine=notify.engine,
        sessions=notify.sessions,
        ledger=notify.ledger,
    )
    with Connection(amqp_url) as conn:
        declare_topology(conn, wired.settings.retry_delays, [WEBHOOKS.queue_for("BA")])
        conn.default_channel.queue_purge(WEBHOOKS.queue_for("BA").name)
    started: list[tuple[Any, threading.Thread]] = []

    def start() -> None:
        worker = build_webhook_worker(wired, ["BA"])
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        started.append((worker, thread))

    yield start
    for worker, thread in started:
        worker.stop()
        thread.join(timeout=20)


def _log(client: FlaskClient, subscription_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/webhooks/{subscription_id}/deliveries", headers=ADMIN)
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.get_json()["items"]
    return items


class TestDelivery:
    def test_a_receiver_failing_twice_gets_the_message_once_signed_after_retries(
        self,
        client: FlaskClient,
        amqp_url: str,
        serve_wsgi: Callable[[Any], str],
        run_webhook_worker: Callable[[], None],
    ) -> None:
        receiver = Receiver([500, 500, 200])
        created = _subscribe(client, serve_wsgi(receiver) + "/hook")
        run_webhook_worker()
        envelope = _published()

        _publish(amqp_url, envelope)

        wait_until(lambda: receiver.delivered(), timeout=30)
        log = wait_until(
            lambda: [d for d in _log(client, created["id"]) if d["status"] == "delivered"]
        )
        assert len(receiver.received) == 3
        assert len(receiver.delivered()) == 1
        headers, body, _ = receiver.delivered()[0]
        verified = Webhook(created["secret"]).verify(body.decode(), headers)
        assert verified["id"] == envelope.id
        assert verified["type"] == envelope.type
        assert verified["data"]["event_id"] == envelope.data["event_id"]
        assert headers["Webhook-Id"] == envelope.id
        assert {h["Webhook-Id"] for h, _, _ in receiver.received} == {envelope.id}
        assert log[0]["message_id"] == envelope.id
        assert log[0]["attempts"] == 3
        assert log[0]["last_status_code"] == 200
        assert log[0]["delivered_at"] is not None
        assert log[0]["next_attempt_at"] is None

    def test_a_410_disables_the_subscription_at_once(
        self,
        client: FlaskClient,
        amqp_url: str,
        serve_wsgi: Callable[[Any], str],
        run_webhook_worker: Callable[[], None],
    ) -> None:
        receiver = Receiver([410])
        created = _subscribe(client, serve_wsgi(receiver) + "/hook")
        run_webhook_worker()

        _publish(amqp_url, _published())

        def disabled() -> dict[str, Any] | None:
            shown: dict[str, Any] = client.get(
                f"/api/v1/webhooks/{created['id']}", headers=ADMIN
            ).get_json()
            return None if shown["enabled"] else shown

        shown = wait_until(disabled)
        assert shown is not None
        assert "410" in shown["disabled_reason"]
        assert len(receiver.received) == 1
        [entry] = _log(client, created["id"])
        assert (entry["status"], entry["attempts"], entry["last_status_code"]) == ("failed", 1, 410)
        # Enabled again, it gets the next message.
        receiver.script[:] = [200]
        enabled = client.post(f"/api/v1/webhooks/{created['id']}/enable", headers=ADMIN)
        assert enabled.get_json()["enabled"] is True
        _publish(amqp_url, _published())
        wait_until(lambda: receiver.delivered(), timeout=30)

    def test_every_attempt_failing_fails_the_delivery_and_disables_the_subscription(
        self,
        client: FlaskClient,
        notify: Notify,
        amqp_url: str,
        serve_wsgi: Callable[[Any], str],
        run_webhook_worker: Callable[[], None],
    ) -> None:
        receiver = Receiver([503])
        created = _subscribe(client, serve_wsgi(receiver) + "/hook")
        run_webhook_worker()

        _publish(amqp_url, _published())

        wait_until(
            lambda: [d for d in _log(client, created["id"]) if d["status"] == "failed"],
            timeout=30,
        )
        # The schedule has three delays: four attempts in all.
        assert len(receiver.received) == 4
        with notify.sessions() as session:
            subscription = session.get(WebhookSubscription, created["id"])
            assert subscription is not None
            assert not subscription.enabled
            assert "every one of 4 attempts" in (subscription.disabled_reason or "")

    def test_an_unreachable_receiver_is_retried_not_lost(
        self, client: FlaskClient, notify: Notify, unused_port_url: str
    ) -> None:
        created = _subscribe(client, unused_port_url + "/hook")
        ids = webhooks.record_message(notify.sessions, _published(), "BA")

        outcomes = webhooks.deliver_due(
            notify.sessions, notify.settings.webhooks, requests.Session(), ids=ids
        )

        assert outcomes == {"retry": 1}
        [entry] = _log(client, created["id"])
        assert entry["status"] == "pending"
        assert entry["last_status_code"] is None
        assert "ConnectionError" in entry["last_error"]
        assert entry["next_attempt_at"] is not None


@pytest.fixture
def unused_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.postgres
class TestOnPostgres:
    def test_concurrent_senders_post_each_delivery_once(
        self, tmp_path: Path, serve_wsgi: Callable[[Any], str]
    ) -> None:
        with postgres_databases("notify") as urls:
            settings = _settings(tmp_path, NOTIFY_DATABASE_URL=urls["notify"])
            apply_migrations(settings.common)
            wired = bootstrap(settings)
            try:
                receiver = Receiver([200])
                client = create_app(wired).test_client()
                created = _subscribe(client, serve_wsgi(receiver) + "/hook")
                for _ in range(30):
                    webhooks.record_message(wired.sessions, _published(), "BA")
                small = dataclasses.replace(wired.settings.webhooks, batch_size=3)

                def send() -> None:
                    webhooks.deliver_due(wired.sessions, small, requests.Session())

                senders = [threading.Thread(target=send) for _ in range(4)]
                for sender in senders:
                    sender.start()
                for sender in senders:
                    sender.join(timeout=60)

                ids = [h["Webhook-Id"] for h, _, _ in receiver.received]
                assert len(ids) == 30
                assert len(set(ids)) == 30
                log = client.get(
                    f"/api/v1/webhooks/{created['id']}/deliveries",
                    query_string={"page_size": 50},
                    headers=ADMIN,
                ).get_json()
                assert {d["status"] for d in log["items"]} == {"delivered"}
                assert log["total"] == 30
            finally:
                wired.engine.dispose()


class TestDeliverCommand:
    def test_deliver_once_sends_what_is_due(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        serve_wsgi: Callable[[Any], str],
    ) -> None:
        settings = _settings(tmp_path)
        for key, value in {
            "NOTIFY_DATABASE_URL": settings.common.database_url,
            "ADMIN_API_KEY": ADMIN_KEY,
            "WEBHOOKS_ALLOW_HTTP": "true",
            "WEBHOOKS_ALLOW_PRIVATE": "true",
        }.items():
            monkeypatch.setenv(key, value)
        apply_migrations(settings.common)
        wired = bootstrap(settings)
        try:
            receiver = Receiver([200])
            _subscribe(create_app(wired).test_client(), serve_wsgi(receiver) + "/hook")
            webhooks.record_message(wired.sessions, _published(), "BA")

            first = CliRunner().invoke(cli, ["webhooks", "deliver", "--once"])
            second = CliRunner().invoke(cli, ["webhooks", "deliver", "--once"])
        finally:
            wired.engine.dispose()

        assert first.exit_code == 0, first.output
        assert first.output.strip().splitlines()[-1] == "delivered 1"
        assert second.output.strip().splitlines()[-1] == "nothing due"
        assert len(receiver.delivered()) == 1
