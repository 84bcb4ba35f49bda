"""Specification of the SMTP mailer against a real (in-process) SMTP server."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP

import pytest

from support.smtp import RecordingSMTPServer
from tacso_notify.mailer import PermanentSendError, SmtpMailer, SmtpSettings, TransientSendError
from tacso_shared.metrics import SMTP_CONNECTION_ERRORS

MAIL_FROM = "events@tacso.example"


class CountingMailer(SmtpMailer):
    """An SmtpMailer that counts the SMTP connections it opens."""

    def __init__(self, settings: SmtpSettings) -> None:
        super().__init__(settings)
        self.connections = 0

    def _connect(self) -> smtplib.SMTP:
        smtp = super()._connect()
        self.connections += 1
        return smtp


def message_to(recipient: str, subject: str = "Invitation: Civil society days") -> bytes:
    """A small UTF-8 message, flattened the way notify flattens its mails (CRLF, 8bit)."""
    message = EmailMessage()
    message["From"] = f"TACSO Events <{MAIL_FROM}>"
    message["To"] = recipient
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.split()[-1]}.{recipient}>"
    message.set_content("Dobrodošli na Dane civilnog društva.\n", cte="8bit")
    return message.as_bytes(policy=SMTP)


def headers_of(raw: bytes) -> bytes:
    """The header block of a raw message, without the blank line."""
    return raw.split(b"\r\n\r\n", 1)[0]


@pytest.fixture
def smtp_server() -> Iterator[RecordingSMTPServer]:
    with RecordingSMTPServer() as server:
        yield server


@pytest.fixture
def mailer(smtp_server: RecordingSMTPServer) -> Iterator[CountingMailer]:
    mailer = CountingMailer(SmtpSettings(host=smtp_server.host, port=smtp_server.port, timeout=5))
    yield mailer
    mailer.close()


class TestSending:
    def test_the_server_receives_the_message_with_its_exact_headers(
        self, mailer: CountingMailer, smtp_server: RecordingSMTPServer
    ) -> None:
        raw = message_to("info@zdravo.example.org")

        mailer.send(MAIL_FROM, "info@zdravo.example.org", raw)

        [mail] = smtp_server.wait_for(1)
        assert mail.mail_from == MAIL_FROM
        assert mail.rcpt_tos == ("info@zdravo.example.org",)
        assert headers_of(mail.data) == headers_of(raw)
        assert mail.body_text() == "Dobrodošli na Dane civilnog društva.\n"

    def test_reuses_one_connection_for_several_sends(
        self, mailer: CountingMailer, smtp_server: RecordingSMTPServer
    ) -> None:
        addresses = [f"cso{n}@example.org" for n in range(5)]

        for address in addresses:
            mailer.send(MAIL_FROM, address, message_to(address))

        received = smtp_server.wait_for(5)
        assert [m.rcpt_tos for m in received] == [(a,) for a in addresses]
        assert mailer.connections == 1

    def test_close_then_send_opens_a_new_connection(
        self, mailer: CountingMailer, smtp_server: RecordingSMTPServer
    ) -> None:
        mailer.send(MAIL_FROM, "a@example.org", message_to("a@example.org"))
        mailer.close()

        mailer.send(MAIL_FROM, "b@example.org", message_to("b@example.org"))

        assert len(smtp_server.wait_for(2)) == 2
        assert mailer.connections == 2


class TestRefusals:
    def test_a_451_is_a_transient_send_error(
        self, mailer: CountingMailer, smtp_server: RecordingSMTPServer
    ) -> None:
        smtp_server.set_failure(451, "4.3.0 mailbox busy")

        with pytest.raises(TransientSendError, match="451"):
            mailer.send(MAIL_FROM, "a@example.org", message_to("a@example.org"))

        assert smtp_server.messages == []

    def test_a_451_to_data_is_a_transient_send_error(
        self, mailer: CountingMailer, smtp_server: RecordingSMTPServer
    ) -> None:
        smtp_server.set_failure(451, "4.3.0 queue full", stage="DATA")

        with pytest.raises(TransientSendError, match="451"):
            mailer.send(MAIL_FROM, "a@example.org", message_to("a@example.org"))

    def test_a_554_to_data_is_a_permanent_send_error(
        self, mailer: CountingMailer, smtp_server: RecordingSMTPServer
    ) -> None:
        smtp_server.set_failure(554, "5.6.0 content rejected", stage="DATA")

        with pytest.raises(PermanentSendError, match="554"):
            mailer.send(MAIL_FROM, "a@example.org", message_to("a@example.org"))

    def test_a_550_for_one_recipient_is_permanent_and_the_next_send_still_works(
        self, mailer: CountingMailer, smtp_server: RecordingSMTPServer
    ) -> None:
        smtp_server.fail_recipients({"gone@example.org": (550, "5.1.1 no such mailbox")})

        with pytest.raises(PermanentSendError, match=r"550 5\.1\.1 no such mailbox"):
            mailer.send(MAIL_FROM, "gone@example.org", message_to("gone@example.org"))
        mailer.send(MAIL_FROM, "here@example.org", message_to("here@example.org"))

        [mail] = smtp_server.wait_for(1)
        assert mail.rcpt_tos == ("here@example.org",)
        assert [(r.stage, r.address, r.code) for r in smtp_server.rejections] == [
            ("RCPT", "gone@example.org", 550)
        ]
        assert mailer.connections == 1

    def test_sending_works_again_once_the_failure_is_lifted(
        self, mailer: CountingMailer, smtp_server: RecordingSMTPServer
    ) -> None:
        smtp_server.set_failure(451)
        with pytest.raises(TransientSendError):
            mailer.send(MAIL_FROM, "a@example.org", message_to("a@example.org"))
        smtp_server.set_failure(None)

        mailer.send(MAIL_FROM, "a@example.org", message_to("a@example.org"))

        assert len(smtp_server.wait_for(1)) == 1


class TestServerOutages:
    def test_a_stopped_server_is_a_transient_send_error(
        self, mailer: CountingMailer, smtp_server: RecordingSMTPServer
    ) -> None:
        mailer.send(MAIL_FROM, "a@example.org", message_to("a@example.org"))
        smtp_server.stop()

        with pytest.raises(TransientSendError):
            mailer.send(MAIL_FROM, "b@example.org", message_to("b@example.org"))

    def test_a_server_that_never_ran_is_a_transient_send_error(
        self, smtp_server: RecordingSMTPServer
    ) -> None:
        smtp_server.stop()
        mailer = SmtpMailer(SmtpSettings(host=smtp_server.host, port=smtp_server.port, timeout=5))

        with pytest.raises(TransientSendError, match="unreachable"):
            mailer.send(MAIL_FROM, "a@example.org", message_to("a@example.org"))

    def test_a_failed_connection_is_counted(self, smtp_server: RecordingSMTPServer) -> None:
        smtp_server.stop()
        mailer = SmtpMailer(SmtpSettings(host=smtp_server.host, port=smtp_server.port, timeout=5))
        before = SMTP_CONNECTION_ERRORS._value.get()

        with pytest.raises(TransientSendError):
            mailer.send(MAIL_FROM, "a@example.org", message_to("a@example.org"))

        assert SMTP_CONNECTION_ERRORS._value.get() == before + 1

    def test_reconnects_after_the_server_restarted(
        self, mailer: CountingMailer, smtp_server: RecordingSMTPServer
    ) -> None:
        mailer.send(MAIL_FROM, "a@example.org", message_to("a@example.org"))
        smtp_server.stop()
        with pytest.raises(TransientSendError):
            mailer.send(MAIL_FROM, "b@example.org", message_to("b@example.org"))

        smtp_server.start()
        mailer.send(MAIL_FROM, "b@example.org", message_to("b@example.org"))

        received = smtp_server.wait_for(2)
        assert [m.rcpt_tos for m in received] == [("a@example.org",), ("b@example.org",)]
        assert mailer.connections == 2

    def test_a_restart_between_sends_is_bridged_by_reconnecting(
        self, mailer: CountingMailer, smtp_server: RecordingSMTPServer
    ) -> None:
        mailer.send(MAIL_FROM, "a@example.org", message_to("a@example.org"))

        smtp_server.restart()
        mailer.send(MAIL_FROM, "b@example.org", message_to("b@example.org"))

        assert len(smtp_server.wait_for(2)) == 2
        assert mailer.connections == 2


class TestDotStuffing:
    @pytest.mark.parametrize(
        "body",
        [b".starts with a dot\r\n", b"line\r\n.\r\nafter a lone dot\r\n", b"no newline at the end"],
    )
    def test_lines_starting_with_a_dot_arrive_intact(
        self, mailer: CountingMailer, smtp_server: RecordingSMTPServer, body: bytes
    ) -> None:
        raw = b"Subject: dots\r\nX-TACSO-Kind: invitation\r\n\r\n" + body
        mailer.send("events@tacso.local", "dots@example.org", raw)
        (received,) = smtp_server.wait_for(1)
        expected = body if body.endswith(b"\r\n") else body + b"\r\n"
        assert received.data.split(b"\r\n\r\n", 1)[1] == expected


class TestSmtpUtf8:
    def test_a_server_that_gained_smtputf8_is_asked_again_on_a_fresh_connection(self) -> None:
        with RecordingSMTPServer(smtputf8=False) as server:
            mailer = SmtpMailer(SmtpSettings(host=server.host, port=server.port, timeout=10))
            try:
                mailer.send(MAIL_FROM, "plain@example.ba", message_to("plain@example.ba"))
                with pytest.raises(PermanentSendError, match="SMTPUTF8"):
                    mailer.send(MAIL_FROM, "žena@example.ba", b"To: x\r\n\r\nx\r\n", smtputf8=True)
                # The server is reconfigured (same port); the old greeting no longer holds.
                server.smtputf8 = True
                server.restart()
                mailer.send(MAIL_FROM, "žena@example.ba", b"To: x\r\n\r\nx\r\n", smtputf8=True)
            finally:
                mailer.close()
            assert [m.rcpt_tos for m in server.messages][-1] == ("žena@example.ba",)
