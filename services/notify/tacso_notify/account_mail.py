"""Account mail: sign-up confirmations and invitations to set a password (one mail a message).

Registry has no SMTP: it publishes ``account.signup.<country>`` and ``account.invited.<country>``
through its outbox, and the ``accounts`` workers send the mail, in the recipient's language.
Each mail is a row of the delivery ledger (kind :data:`SIGNUP_CONFIRMATION`,
:data:`SIGNUP_KNOWN_ADDRESS` or :data:`USER_INVITATION`), keyed by the message's id: a
redelivered message finds its row ``sent`` and sends nothing. As for every mail, the window
between the SMTP server's acceptance and the ledger's ``sent`` remains (a crash there sends again).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import sqlalchemy as sa
from babel.dates import format_datetime as format_local_datetime
from sqlalchemy.orm import Session, sessionmaker

from tacso_notify.addressing import UnsendableAddress, smtp_address
from tacso_notify.domain import (
    ACCOUNT_KINDS,
    SIGNUP_CONFIRMATION,
    SIGNUP_KNOWN_ADDRESS,
    USER_INVITATION,
    Sender,
)
from tacso_notify.i18n import CATALOG, locale_of
from tacso_notify.ledger import _insert_ignoring_duplicates
from tacso_notify.mailer import Mailer, PermanentSendError, TransientSendError
from tacso_notify.models import FAILED, PENDING, SENT, Delivery
from tacso_shared import correlation, metrics
from tacso_shared.consumer import Handler, TransientError
from tacso_shared.contracts import SignupConfirmationRequested, UserInvited
from tacso_shared.db import transaction
from tacso_shared.envelope import Envelope, PoisonMessage
from tacso_shared.vocabulary import COUNTRIES

log = logging.getLogger(__name__)

__all__ = [
    "ACCOUNT_KINDS",
    "SIGNUP_CONFIRMATION",
    "SIGNUP_KNOWN_ADDRESS",
    "USER_INVITATION",
    "AccountMailer",
    "make_account_handler",
    "render",
]


_TEMPLATES = jinja2.FileSystemLoader(str(Path(__file__).parent / "templates"))


@dataclass(frozen=True)
class AccountMail:
    """One account mail, rendered: what the ledger keys it by and the message itself."""

    kind: str
    subject_id: str
    email: str
    country: str
    subject: str
    text: str
    html: str


def _when(moment: datetime, language: str, country: str) -> str:
    """When a link expires, in the recipient's country's time and their language's format."""
    zone = ZoneInfo(COUNTRIES[country].timezone)
    return str(format_local_datetime(moment, "long", tzinfo=zone, locale=locale_of(language)))


def render(message: SignupConfirmationRequested | UserInvited) -> AccountMail:
    """The mail ``message`` asks for, in its recipient's language."""
    language = message.language
    environment = CATALOG.environment(_TEMPLATES, language)
    gettext = CATALOG.translations(language).gettext
    context: dict[str, Any] = {
        "name": message.name,
        "expires": _when(message.expires_at, language, message.country),
    }
    if isinstance(message, UserInvited):
        kind, subject_id, template = USER_INVITATION, message.user_id, "invitation"
        subject = gettext("Your TACSO events account: choose a password")
        context["url"] = message.set_password_url
    elif message.already_registered:
        kind, subject_id, template = SIGNUP_KNOWN_ADDRESS, message.signup_id, "known_address"
        subject = gettext("You are already registered with the TACSO network")
    else:
        kind, subject_id, template = SIGNUP_CONFIRMATION, message.signup_id, "confirm_signup"
        subject = gettext("Please confirm your sign-up to the TACSO network")
        context["url"] = message.confirm_url
    text = environment.get_template(f"accounts/{template}.txt").render(**context)
    html = environment.get_template(f"accounts/{template}.html").render(subject=subject, **context)
    return AccountMail(kind, subject_id, message.email, message.country, subject, text, html)


def build_message(mail: AccountMail, sender: Sender, domain: str, language: str) -> EmailMessage:
    """The email of ``mail`` (text and HTML), addressed for SMTP."""
    address = smtp_address(mail.email)
    message = EmailMessage(policy=SMTP)
    message["From"] = formataddr((sender.name, sender.address))
    message["To"] = address.mailbox
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=domain)
    message["Content-Language"] = language
    message["Auto-Submitted"] = "auto-generated"
    message["X-TACSO-Kind"] = mail.kind
    cid = correlation.current()
    if cid:
        message["X-Correlation-ID"] = cid
    message.set_content(mail.text, cte="8bit")
    message.add_alternative(mail.html, subtype="html", cte="8bit")
    return message


@dataclass
class AccountMailer:
    """Sends account mail once per message, through one SMTP connection, with the ledger."""

    sessions: sessionmaker[Session]
    mailer: Mailer
    sender: Sender
    domain: str = "tacso.local"

    def _claim(self, envelope: Envelope, mail: AccountMail) -> Delivery | None:
        """The ledger row of this message's mail, or ``None`` if it was sent already."""
        now = datetime.now(UTC)
        with transaction(self.sessions) as session:
            _insert_ignoring_duplicates(
                session,
                [
                    {
                        "event_id": envelope.id[:36],
                        "revision": 1,
                        "organisation_id": mail.subject_id[:36],
                        "kind": mail.kind,
                        "recipient": mail.email,
                        "country": mail.country,
                        "status": PENDING,
                        "attempts": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                ],
            )
            row = session.scalars(
                sa.select(Delivery).where(
                    Delivery.event_id == envelope.id[:36],
                    Delivery.organisation_id == mail.subject_id[:36],
                    Delivery.kind == mail.kind,
                )
            ).one()
            session.expunge(row)
        return None if row.status in (SENT, FAILED) else row

    def _record(self, delivery_id: int, **values: Any) -> None:
        with transaction(self.sessions) as session:
            session.execute(
                sa.update(Delivery)
                .where(Delivery.id == delivery_id)
                .values(attempts=Delivery.attempts + 1, updated_at=datetime.now(UTC), **values)
            )

    def send(self, envelope: Envelope, message: SignupConfirmationRequested | UserInvited) -> str:
        """Send the mail ``message`` asks for unless its ledger row says it was; the outcome."""
        mail = render(message)
        delivery = self._claim(envelope, mail)
        if delivery is None:
            return "already done"
        counted = metrics.MAILS.labels(mail.kind, mail.country, "sent")
        try:
            email = build_message(mail, self.sender, self.domain, message.language)
            address = smtp_address(mail.email)
            self.mailer.send(
                self.sender.address, address.mailbox, email.as_bytes(), address.smtputf8
            )
        except (UnsendableAddress, PermanentSendError) as exc:
            self._record(delivery.id, status=FAILED, last_error=str(exc)[:500])
            metrics.MAILS.labels(mail.kind, mail.country, "failed").inc()
            log.warning("%s delivery %d failed: %s", mail.kind, delivery.id, exc)
            return "failed"
        except TransientSendError as exc:
            self._record(delivery.id, last_error=str(exc)[:500])
            raise TransientError(str(exc)) from exc
        self._record(
            delivery.id,
            status=SENT,
            sent_at=datetime.now(UTC),
            message_id=str(email["Message-ID"]),
            last_error=None,
        )
        counted.inc()
        log.info("%s delivery %d accepted by SMTP", mail.kind, delivery.id)
        return "sent"


def make_account_handler(mailer: AccountMailer) -> Handler:
    """The consumer-facing handler of the ``accounts`` queues."""

    def handle(envelope: Envelope, message: object) -> None:
        if not isinstance(message, SignupConfirmationRequested | UserInvited):
            raise PoisonMessage(f"{envelope.type} is not a message for the accounts worker")
        if isinstance(message, SignupConfirmationRequested) and not (
            message.already_registered or message.confirm_url
        ):
            raise PoisonMessage("a sign-up confirmation without a link")
        mailer.send(envelope, message)

    return handle
