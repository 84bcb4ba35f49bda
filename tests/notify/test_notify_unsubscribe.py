"""Every mail carries its recipient's one-click unsubscribe (RFC 8058) and preferences link, and
notify honours opt-outs at send time: against a real registry served over HTTP."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
import requests

from support.messages import event_published
from tacso_notify.audience import RegistryDirectory
from tacso_notify.domain import MessageKind, Sender
from tacso_notify.handlers import Dependencies, fan_out
from tacso_notify.ledger import DeliveryFilter, DeliveryLedger
from tacso_notify.sending import SenderPool
from tacso_notify.unsubscribe import UnsubscribeLinks
from tacso_registry import changes, operations, preferences
from tacso_registry.bootstrap import Registry
from tacso_registry.models import Organisation
from tacso_shared.contracts import EventPublished
from tacso_shared.db import transaction
from tacso_shared.links import LinkSigner

SENDER = Sender("events@tacso.example", "TACSO Events")
ADMIN_KEY = "test-admin-key"


class RecordingMailer:
    """Accepts every mail; calls ``on_send`` (once) before the first one is accepted."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.on_send: Callable[[], None] | None = None

    def send(self, mail_from: str, recipient: str, message: bytes, smtputf8: bool = False) -> None:
        hook, self.on_send = self.on_send, None
        if hook is not None:
            hook()
        self.sent.append((recipient, message))

    def close(self) -> None:
        pass

    def to(self, email: str) -> list[EmailMessage]:
        return [parse(raw) for to, raw in self.sent if to == email]


def parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def make_event(event_id: str, topics: list[str]) -> EventPublished:
    return event_published(
        event_id=event_id,
        revision=1,
        title="Youth and the environment",
        type="workshop",
        country="BA",
        topics=topics,
        starts_at=datetime(2026, 12, 15, 9, tzinfo=UTC),
        ends_at=datetime(2026, 12, 15, 15, tzinfo=UTC),
        online_url="https://meet.example.org/x",
        organiser_id="org-rc",
        organiser_name="VESTA",
        url=f"https://events.tacso.example/events/{event_id}",
    )


@pytest.fixture
def add(registry: Registry) -> Callable[..., str]:
    numbers = iter(range(1000))

    def add_organisation(**fields: Any) -> str:
        n = next(numbers)
        data = {
            "name": f"Udruženje {n}",
            "kind": "cso",
            "country": "BA",
            "email": f"cso{n}@example.org",
            "language": "bs",
            "topics": ["youth", "environment"],
            **fields,
        }
        with transaction(registry.sessions) as session:
            return operations.register_organisation(session, data, actor="test").id

    return add_organisation


@pytest.fixture
def mailer() -> RecordingMailer:
    return RecordingMailer()


@pytest.fixture
def deps(
    ledger: DeliveryLedger, registry: Registry, registry_url: str, mailer: RecordingMailer
) -> Iterator[Dependencies]:
    pool = SenderPool(lambda: mailer, connections=1)
    links = UnsubscribeLinks(LinkSigner(registry.settings.common.link_signing_keys), registry_url)
    yield Dependencies(
        ledger=ledger,
        directory=RegistryDirectory(registry_url, ADMIN_KEY, page_size=2),
        pool=pool,
        sender=SENDER,
        domain="tacso.example",
        unsubscribe=links,
    )
    pool.close()


def set_preferences(registry: Registry, org_id: str, **wanted: Any) -> None:
    with transaction(registry.sessions) as session:
        org = session.get(Organisation, org_id)
        assert org is not None
        changes.set_preferences(session, org, preferences.Preferences(**wanted))


class TestHeadersAndFooter:
    def test_every_mail_carries_its_recipients_one_click_unsubscribe_and_preferences_link(
        self,
        deps: Dependencies,
        mailer: RecordingMailer,
        add: Callable[..., str],
        registry_url: str,
    ) -> None:
        add(email="a@example.org")
        add(email="b@example.org")

        fan_out(make_event("ev-1", ["youth"]), MessageKind.INVITATION, deps)

        [mail_a] = mailer.to("a@example.org")
        [mail_b] = mailer.to("b@example.org")
        assert mail_a["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        url_a = re.fullmatch(r"<(.+)>", str(mail_a["List-Unsubscribe"]))
        url_b = re.fullmatch(r"<(.+)>", str(mail_b["List-Unsubscribe"]))
        assert url_a and url_b and url_a[1] != url_b[1]
        assert url_a[1].startswith(f"{registry_url}/unsubscribe/")
        token = url_a[1].rsplit("/", 1)[1]
        preferences_url = f"{registry_url}/preferences/{token}"
        text = mail_a.get_body(preferencelist=("plain",))
        html = mail_a.get_body(preferencelist=("html",))
        assert text is not None and html is not None
        assert "Odaberite šta primate ili se odjavite:" in text.get_content()
        assert preferences_url in text.get_content()
        assert f'<a href="{preferences_url}">' in html.get_content()
        page = requests.get(preferences_url, timeout=5)
        assert page.status_code == 200 and "Udruženje" in page.text

    def test_rfc_8058_one_click_post_to_the_header_url_stops_the_next_event(
        self, deps: Dependencies, mailer: RecordingMailer, add: Callable[..., str]
    ) -> None:
        add(email="leaving@example.org")
        add(email="staying@example.org")
        fan_out(make_event("ev-1", ["youth"]), MessageKind.INVITATION, deps)
        [mail] = mailer.to("leaving@example.org")
        url = str(mail["List-Unsubscribe"]).strip("<>")

        # What a mailbox provider does (RFC 8058, section 3.2): no cookies, no redirects.
        response = requests.post(
            url,
            data="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            allow_redirects=False,
            timeout=5,
        )
        fan_out(make_event("ev-2", ["environment"]), MessageKind.INVITATION, deps)

        assert response.status_code == 200
        assert len(mailer.to("leaving@example.org")) == 1
        assert len(mailer.to("staying@example.org")) == 2


class TestOptOutsAtSendTime:
    def test_a_topic_opt_out_excludes_only_that_topic_and_opting_back_in_restores(
        self,
        deps: Dependencies,
        mailer: RecordingMailer,
        add: Callable[..., str],
        registry: Registry,
    ) -> None:
        org = add(email="picky@example.org")
        set_preferences(registry, org, topics_opted_out=["youth"])

        fan_out(make_event("ev-youth", ["youth"]), MessageKind.INVITATION, deps)
        fan_out(make_event("ev-env", ["environment"]), MessageKind.INVITATION, deps)
        assert [m["X-TACSO-Event-Id"] for m in mailer.to("picky@example.org")] == ["ev-env"]

        set_preferences(registry, org)
        fan_out(make_event("ev-youth-2", ["youth"]), MessageKind.INVITATION, deps)
        assert len(mailer.to("picky@example.org")) == 2

    def test_an_opt_out_in_the_middle_of_a_fan_out_gets_nothing_after(
        self,
        deps: Dependencies,
        mailer: RecordingMailer,
        add: Callable[..., str],
        registry: Registry,
        ledger: DeliveryLedger,
    ) -> None:
        ids = sorted(add(email=f"member{n}@example.org") for n in range(6))
        last = ids[-1]
        # The last organisation (on the third page of two) opts out while the first mail goes.
        mailer.on_send = lambda: set_preferences(registry, last, all=False)

        result = fan_out(make_event("ev-mid", []), MessageKind.INVITATION, deps)

        with transaction(registry.sessions) as session:
            leaver = session.get(Organisation, last)
            assert leaver is not None
            leaving_email = leaver.email
        assert result.sent == 5
        assert mailer.to(leaving_email) == []
        rows, _ = ledger.list(DeliveryFilter(event_id="ev-mid"))
        assert last not in {d.organisation_id for d in rows}
