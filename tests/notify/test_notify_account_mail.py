"""Account mail end to end: registry's outbox, the real broker, an accounts worker, real SMTP.

A sign-up's confirmation, the "already registered" mail and a person's invitation reach the
address in its language, each once, and each is a row of the delivery ledger.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from support.smtp import RecordingSMTPServer
from tacso_notify.account_mail import (
    SIGNUP_CONFIRMATION,
    SIGNUP_KNOWN_ADDRESS,
    USER_INVITATION,
    AccountMailer,
    render,
)
from tacso_notify.bootstrap import Notify, NotifySettings, apply_migrations, bootstrap
from tacso_notify.mailer import SmtpMailer
from tacso_notify.models import Delivery
from tacso_notify.subscriptions import declare_subscriptions
from tacso_notify.workers import build_worker
from tacso_registry.app import create_app
from tacso_registry.bootstrap import Registry
from tacso_registry.bootstrap import apply_migrations as apply_registry_migrations
from tacso_registry.bootstrap import bootstrap as bootstrap_registry
from tacso_registry.bootstrap import load_settings as load_registry_settings
from tacso_registry.models import outbox
from tacso_shared.contracts import SignupConfirmationRequested, UserInvited
from tacso_shared.envelope import Envelope
from tacso_shared.outbox import OutboxRelay

ADMIN = {"Authorization": "Bearer account-mail-admin"}


@pytest.fixture
def stack(
    tmp_path: Path, amqp_url: str, smtp_server: RecordingSMTPServer
) -> Iterator[tuple[Registry, Notify]]:
    """Registry and notify on SQLite, sharing the session's vhost and SMTP server."""
    env = {
        "VAR_DIR": str(tmp_path),
        "ADMIN_API_KEY": "account-mail-admin",
        "AMQP_URL": amqp_url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_server.port),
        "RETRY_DELAYS": "1",
        "REGISTRY_PUBLIC_URL": "https://registry.tacso.example",
    }
    registry_settings = load_registry_settings(env)
    apply_registry_migrations(registry_settings.common)
    registry = bootstrap_registry(registry_settings)
    notify_settings = NotifySettings.load(env)
    apply_migrations(notify_settings.common)
    notify = bootstrap(notify_settings)
    declare_subscriptions(amqp_url, notify_settings.retry_delays)
    yield registry, notify
    registry.engine.dispose()
    notify.engine.dispose()


def relay_all(registry: Registry, amqp_url: str) -> None:
    relay = OutboxRelay(registry.engine, outbox, amqp_url)
    try:
        while relay.run_once():
            pass
    finally:
        relay._reset()  # the relay has no public close: drop its connection


def part(mail: Any, kind: str) -> str:
    """The text of the ``plain`` or ``html`` part of a received mail."""
    body = mail.message.get_body((kind,))
    assert body is not None, f"no {kind} part"
    return str(body.get_content())


def signup(client: Any, email: str, language: str, **changes: Any) -> None:
    body = {
        "name": "Udruženje Čisto Nebo",
        "kind": "cso",
        "country": "BA",
        "topics": ["environment"],
        "language": language,
        "email": email,
        "consent_text_version": "signup-2026-11",
        "consent": True,
        **changes,
    }
    assert client.post("/api/v1/signups", json=body).status_code == 202


class TestAccountWorker:
    def test_confirmation_known_address_and_invitation_arrive_once_in_their_language(
        self, stack: tuple[Registry, Notify], amqp_url: str, smtp_server: RecordingSMTPServer
    ) -> None:
        registry, notify = stack
        client = create_app(registry).test_client()
        tag = uuid.uuid4().hex[:8]
        new, known, person = (f"{n}-{tag}@example.org" for n in ("new", "known", "person"))
        org = client.post(
            "/api/v1/organisations",
            json={
                "name": "Građanske inicijative",
                "kind": "cso",
                "country": "RS",
                "email": known,
                "language": "sr",
                "topics": [],
            },
            headers=ADMIN,
        ).get_json()
        signup(client, new, "bs")
        signup(client, known, "mk", country="RS")
        invited = client.post(
            "/api/v1/users",
            json={
                "email": person,
                "name": "Ana",
                "role": "organisation_member",
                "organisation_id": org["id"],
            },
            headers=ADMIN,
        )
        assert invited.status_code == 201
        relay_all(registry, amqp_url)

        worker = build_worker(notify, "accounts")
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        try:
            mails = smtp_server.wait_for(
                3, predicate=lambda m: any(tag in r for r in m.rcpt_tos), timeout=30
            )
        finally:
            worker.stop()
            thread.join(timeout=20)

        by_address = {m.rcpt_tos[0]: m for m in mails}
        confirmation = by_address[new]
        assert confirmation.header("Subject") == "Potvrdite prijavu u mrežu TACSO"
        assert confirmation.header("X-TACSO-Kind") == SIGNUP_CONFIRMATION
        text = part(confirmation, "plain")
        assert "https://registry.tacso.example/signup/confirm/" in text
        assert "Link vrijedi do" in text
        already = by_address[known]
        assert already.header("Subject") == "Веќе сте регистрирани во мрежата TACSO"
        assert "/signup/confirm/" not in part(already, "plain")
        invitation = by_address[person]
        assert invitation.header("Subject") == "Ваш налог за TACSO догађаје: изаберите лозинку"
        html = part(invitation, "html")
        assert "https://registry.tacso.example/users/set-password/" in html
        with notify.sessions() as session:
            kinds = {
                d.recipient: (d.kind, d.status)
                for d in session.scalars(
                    sa.select(Delivery).where(Delivery.recipient.contains(tag))
                )
            }
        assert kinds == {
            new: (SIGNUP_CONFIRMATION, "sent"),
            known: (SIGNUP_KNOWN_ADDRESS, "sent"),
            person: (USER_INVITATION, "sent"),
        }


class TestIdempotence:
    def test_a_redelivered_message_sends_no_second_mail(
        self, stack: tuple[Registry, Notify], smtp_server: RecordingSMTPServer
    ) -> None:
        _, notify = stack
        tag = uuid.uuid4().hex[:8]
        message = UserInvited(
            user_id=str(uuid.uuid4()),
            email=f"twice-{tag}@example.org",
            name="Ana",
            language="tr",
            country="TR",
            set_password_url="https://registry.tacso.example/users/set-password/x",
            expires_at=__import__("datetime").datetime(
                2026, 12, 6, 12, tzinfo=__import__("datetime").UTC
            ),
        )
        envelope = Envelope(type="org.tacso.registry.user.invited.v1", source="/test", data={})
        mailer = AccountMailer(
            notify.sessions, SmtpMailer(notify.settings.smtp), notify.settings.sender
        )

        first = mailer.send(envelope, message)
        second = mailer.send(envelope, message)

        assert (first, second) == ("sent", "already done")
        mails = smtp_server.wait_for(1, predicate=lambda m: tag in m.rcpt_tos[0])
        assert len(mails) == 1
        assert mails[0].header("Subject") == "TACSO etkinlikleri hesabınız: bir parola seçin"


class TestRendering:
    @pytest.mark.parametrize(
        ("language", "phrase"),
        [
            ("en", "The link is valid until"),
            ("sq", "Lidhja vlen deri më"),
            ("hr", "Poveznica vrijedi do"),
            ("sr", "Линк важи до"),
            ("sr-Latn", "Link važi do"),
            ("cnr", "Link važi do"),
            ("mk", "Врската важи до"),
        ],
    )
    def test_the_confirmation_is_in_the_recipients_language_with_a_local_date(
        self, language: str, phrase: str
    ) -> None:
        mail = render(
            SignupConfirmationRequested(
                signup_id="s",
                email="a@example.org",
                name="<b>Ime</b>",
                language=language,
                country="ME",
                expires_at=datetime(2026, 12, 6, 12, tzinfo=UTC),
                confirm_url="https://registry.tacso.example/signup/confirm/t",
            )
        )

        assert phrase in mail.text
        assert "2026" in mail.text
        assert "&lt;b&gt;Ime&lt;/b&gt;" in mail.html  # markup in a name is escaped
