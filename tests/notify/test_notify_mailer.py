"""Specification of the SMTP mailer against a real (in-process) SMTP server."""

from __future__ import annotations

import smtplib
import socket
import threading
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any, cast

import pytest

from support.smtp import RecordingSMTPServer
from tacso_notify.mailer import (
    PermanentSendError,
    SmtpMailer,
    SmtpSettings,
    TransientSendError,
    _transmit,
)
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


class _WriteRecordingSocket:
    """A client socket that records each ``sendall``: one entry per write to the wire."""

    def __init__(self, sock: socket.socket, writes: list[bytes]) -> None:
        self._sock = sock
        self._writes = writes

    def sendall(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._sock.sendall(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class WireMailer(CountingMailer):
    """A CountingMailer that records every write its connections make (``writes``)."""

    def __init__(self, settings: SmtpSettings) -> None:
        super().__init__(settings)
        self.writes: list[bytes] = []

    def _connect(self) -> smtplib.SMTP:
        smtp = super()._connect()
        assert smtp.sock is not None
        smtp.sock = cast(socket.socket, _WriteRecordingSocket(smtp.sock, self.writes))
        return smtp

    def envelope_writes(self) -> list[bytes]:
        """The writes after the greeting (EHLO) and before QUIT."""
        return [w for w in self.writes if not w.lower().startswith((b"ehlo ", b"quit"))]


def wire_mailer(server: RecordingSMTPServer) -> WireMailer:
    return WireMailer(SmtpSettings(host=server.host, port=server.port, timeout=5))


@pytest.fixture
def pipelining_server() -> Iterator[RecordingSMTPServer]:
    with RecordingSMTPServer(pipelining=True) as server:
        yield server


@pytest.fixture
def pipelining_mailer(pipelining_server: RecordingSMTPServer) -> Iterator[WireMailer]:
    mailer = wire_mailer(pipelining_server)
    yield mailer
    mailer.close()


class TestPipelining:
    """RFC 2920: with a server offering PIPELINING, MAIL, RCPT and DATA go out in one write."""

    def test_the_envelope_goes_out_in_one_write_and_the_body_in_a_second(
        self, pipelining_mailer: WireMailer, pipelining_server: RecordingSMTPServer
    ) -> None:
        raw = message_to("info@zdravo.example.org")

        pipelining_mailer.send(MAIL_FROM, "info@zdravo.example.org", raw)

        [mail] = pipelining_server.wait_for(1)
        assert (mail.mail_from, mail.rcpt_tos, mail.data) == (
            MAIL_FROM,
            ("info@zdravo.example.org",),
            raw,
        )
        assert pipelining_mailer.envelope_writes() == [
            b"mail FROM:<events@tacso.example> BODY=8BITMIME\r\n"
            b"rcpt TO:<info@zdravo.example.org>\r\n"
            b"data\r\n",
            raw + b".\r\n",
        ]

    def test_without_pipelining_each_command_waits_for_its_reply(self) -> None:
        with RecordingSMTPServer() as server:
            mailer = wire_mailer(server)
            raw = message_to("info@zdravo.example.org")
            try:
                mailer.send(MAIL_FROM, "info@zdravo.example.org", raw)
            finally:
                mailer.close()
            [mail] = server.wait_for(1)
        assert mail.data == raw
        assert mailer.envelope_writes() == [
            b"mail FROM:<events@tacso.example> BODY=8BITMIME\r\n",
            b"rcpt TO:<info@zdravo.example.org>\r\n",
            b"data\r\n",
            raw + b".\r\n",
        ]

    @pytest.mark.parametrize(
        "body",
        [b".starts with a dot\r\n", b"line\r\n.\r\n..two dots\r\n", b"no newline at the end"],
    )
    def test_lines_starting_with_a_dot_arrive_intact(
        self, pipelining_mailer: WireMailer, pipelining_server: RecordingSMTPServer, body: bytes
    ) -> None:
        raw = b"Subject: dots\r\n\r\n" + body

        pipelining_mailer.send(MAIL_FROM, "dots@example.org", raw)

        [mail] = pipelining_server.wait_for(1)
        expected = body if body.endswith(b"\r\n") else body + b"\r\n"
        assert mail.data.split(b"\r\n\r\n", 1)[1] == expected
        assert len(pipelining_mailer.envelope_writes()) == 2

    def test_fifty_messages_over_one_connection_arrive_in_order(
        self, pipelining_mailer: WireMailer, pipelining_server: RecordingSMTPServer
    ) -> None:
        addresses = [f"cso{n}@example.org" for n in range(50)]

        for address in addresses:
            pipelining_mailer.send(MAIL_FROM, address, message_to(address, f"Notice {address}"))

        received = pipelining_server.wait_for(50)
        assert [m.rcpt_tos for m in received] == [(a,) for a in addresses]
        assert [m.data for m in received] == [message_to(a, f"Notice {a}") for a in addresses]
        assert pipelining_mailer.connections == 1
        assert len(pipelining_mailer.envelope_writes()) == 2 * 50

    def test_an_smtputf8_envelope_is_pipelined_in_utf8(
        self, pipelining_mailer: WireMailer, pipelining_server: RecordingSMTPServer
    ) -> None:
        pipelining_mailer.send(MAIL_FROM, "žena@example.ba", b"To: x\r\n\r\nx\r\n", smtputf8=True)
        pipelining_mailer.send(MAIL_FROM, "plain@example.ba", message_to("plain@example.ba"))

        received = pipelining_server.wait_for(2)
        assert [m.rcpt_tos for m in received] == [("žena@example.ba",), ("plain@example.ba",)]
        envelopes = pipelining_mailer.envelope_writes()[::2]
        assert envelopes[0] == (
            "mail FROM:<events@tacso.example> BODY=8BITMIME SMTPUTF8\r\n"
            "rcpt TO:<žena@example.ba>\r\ndata\r\n".encode()
        )
        assert b"SMTPUTF8" not in envelopes[1]

    def test_a_550_recipient_is_permanent_and_suppressed_and_the_next_send_works(
        self, pipelining_mailer: WireMailer, pipelining_server: RecordingSMTPServer
    ) -> None:
        pipelining_server.fail_recipients({"gone@example.org": (550, "5.1.1 no such mailbox")})

        with pytest.raises(PermanentSendError, match=r"550 5\.1\.1 no such mailbox") as refused:
            pipelining_mailer.send(MAIL_FROM, "gone@example.org", message_to("gone@example.org"))
        pipelining_mailer.send(MAIL_FROM, "here@example.org", message_to("here@example.org"))

        assert refused.value.suppress is True
        [mail] = pipelining_server.wait_for(1)
        assert mail.rcpt_tos == ("here@example.org",)
        assert [(r.stage, r.address, r.code) for r in pipelining_server.rejections] == [
            ("RCPT", "gone@example.org", 550)
        ]
        assert pipelining_mailer.connections == 1
        # The refused envelope, the RSET after it, then the next message's envelope and body.
        writes = pipelining_mailer.envelope_writes()
        assert [w.split(b" ", 1)[0].strip() for w in writes[:3]] == [b"mail", b"rset", b"mail"]
        assert len(writes) == 4

    def test_a_451_recipient_is_transient_and_the_mailer_works_afterwards(
        self, pipelining_mailer: WireMailer, pipelining_server: RecordingSMTPServer
    ) -> None:
        pipelining_server.set_failure(451, "4.3.0 mailbox busy")
        with pytest.raises(TransientSendError, match="451"):
            pipelining_mailer.send(MAIL_FROM, "a@example.org", message_to("a@example.org"))
        pipelining_server.set_failure(None)

        pipelining_mailer.send(MAIL_FROM, "a@example.org", message_to("a@example.org"))

        [mail] = pipelining_server.wait_for(1)
        assert mail.rcpt_tos == ("a@example.org",)
        assert pipelining_mailer.connections == 1
        assert pipelining_mailer.envelope_writes()[0].count(b"\r\n") == 3  # pipelined

    def test_a_554_to_the_message_is_permanent_not_suppressed_and_the_next_send_works(
        self, pipelining_mailer: WireMailer, pipelining_server: RecordingSMTPServer
    ) -> None:
        pipelining_server.set_failure(554, "5.6.0 content rejected", stage="DATA")
        with pytest.raises(PermanentSendError, match="554") as refused:
            pipelining_mailer.send(MAIL_FROM, "a@example.org", message_to("a@example.org"))
        pipelining_server.set_failure(None)

        pipelining_mailer.send(MAIL_FROM, "b@example.org", message_to("b@example.org"))

        assert refused.value.suppress is False
        [mail] = pipelining_server.wait_for(1)
        assert mail.rcpt_tos == ("b@example.org",)
        assert pipelining_mailer.connections == 1
        assert pipelining_mailer.envelope_writes()[0].count(b"\r\n") == 3  # pipelined


class ScriptedSMTPServer:
    """A bare TCP server offering PIPELINING whose replies ``answer`` decides, one connection
    at a time: for the replies aiosmtpd never gives (a refused MAIL, a 354 to DATA after a
    refused RCPT, a 421 followed by hanging up).

    ``answer`` gets each command line (and "." for the end of a message) and returns the reply;
    a 421 reply closes the connection. ``commands`` records what arrived, in order.
    """

    def __init__(self, answer: Callable[[str], str]) -> None:
        self.commands: list[str] = []
        self._answer = answer
        self._stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with conn, conn.makefile("rb") as lines:
                conn.sendall(b"220 scripted ESMTP\r\n")
                for line in lines:
                    command = line.decode().rstrip("\r\n")
                    self.commands.append(command)
                    verb = command.split(" ", 1)[0].upper()
                    if verb == "EHLO":
                        reply = "250-scripted\r\n250-PIPELINING\r\n250 8BITMIME"
                    elif verb == "QUIT":
                        reply = "221 2.0.0 bye"
                    else:
                        reply = self._answer(command)
                    if verb == "DATA" and reply.startswith("354"):
                        conn.sendall(f"{reply}\r\n".encode())
                        while next(lines, b".\r\n") != b".\r\n":
                            pass
                        self.commands.append(".")
                        reply = self._answer(".")
                    conn.sendall(f"{reply}\r\n".encode())
                    if reply.startswith(("421", "221")):
                        break

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()


def _verb(command: str) -> str:
    return command.split(" ", 1)[0].split(":", 1)[0].upper()


class TestPipeliningRefusalsOnTheWire:
    """The first refusal is raised, after every reply was read: the connection stays in step."""

    def test_a_refused_sender_is_raised_after_the_rcpt_and_data_replies(self) -> None:
        replies = {"MAIL": "550 5.7.1 sender not allowed", "NOOP": "250 2.0.0 still in step"}
        server = ScriptedSMTPServer(lambda command: replies.get(_verb(command), "503 5.5.1 no"))
        smtp = smtplib.SMTP("127.0.0.1", server.port, timeout=5)
        try:
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                _transmit(smtp, MAIL_FROM, "a@example.org", b"Subject: x\r\n\r\nx\r\n")
            # Had the RCPT and DATA replies been left unread, NOOP would get a 503.
            assert smtp.noop() == (250, b"2.0.0 still in step")
        finally:
            smtp.close()
            server.close()
        assert refused.value.smtp_code == 550
        assert [_verb(c) for c in server.commands] == ["EHLO", "MAIL", "RCPT", "DATA", "NOOP"]

    def test_a_354_after_a_refused_recipient_ends_the_empty_message_then_resets(self) -> None:
        recipients: list[str] = []

        def answer(command: str) -> str:
            verb = _verb(command)
            if verb == "RCPT" and "gone@" in command:
                return "550 5.1.1 no such mailbox"
            if verb == "RCPT":
                recipients.append(command)
            if verb == "RSET":
                recipients.clear()
            if verb == ".":
                return "250 2.0.0 queued" if recipients else "554 5.5.1 no valid recipients"
            return "354 go ahead" if verb == "DATA" else "250 2.0.0 OK"

        server = ScriptedSMTPServer(answer)
        mailer = CountingMailer(SmtpSettings(host="127.0.0.1", port=server.port, timeout=5))
        try:
            with pytest.raises(PermanentSendError, match=r"550 5\.1\.1") as refused:
                mailer.send(MAIL_FROM, "gone@example.org", b"Subject: x\r\n\r\nx\r\n")
            mailer.send(MAIL_FROM, "here@example.org", b"Subject: y\r\n\r\ny\r\n")
        finally:
            mailer.close()
            server.close()
        assert refused.value.suppress is True
        assert [_verb(c) for c in server.commands] == [
            *("EHLO", "MAIL", "RCPT", "DATA", "."),  # the refused recipient, its empty message
            *("RSET", "MAIL", "RCPT", "DATA", "."),  # the next message, on the same connection
            "QUIT",
        ]
        assert mailer.connections == 1

    def test_a_421_to_mail_and_hanging_up_is_a_sender_refusal_without_a_retry(self) -> None:
        server = ScriptedSMTPServer(lambda command: "421 4.3.2 shutting down")
        mailer = CountingMailer(SmtpSettings(host="127.0.0.1", port=server.port, timeout=5))
        try:
            with pytest.raises(TransientSendError, match="sender refused: 421"):
                mailer.send(MAIL_FROM, "a@example.org", b"Subject: x\r\n\r\nx\r\n")
        finally:
            mailer.close()
            server.close()
        assert mailer.connections == 1
