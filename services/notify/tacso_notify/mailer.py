"""Sending over SMTP with one reused connection, and telling passing failures from final ones."""

from __future__ import annotations

import contextlib
import logging
import re
import smtplib
import ssl
from dataclasses import dataclass
from typing import Protocol

from tacso_shared import metrics

log = logging.getLogger(__name__)


class TransientSendError(Exception):
    """The server could not take the message now (4xx, connection lost): try again later."""


class PermanentSendError(Exception):
    """The server will never take the message for this recipient (5xx): record and give up.

    ``suppress`` says whether the address itself was refused (a 5xx to RCPT: stop writing to
    it) rather than this one message (a 5xx to DATA, or a server that cannot carry it).
    """

    def __init__(self, reason: str, suppress: bool = True) -> None:
        super().__init__(reason)
        self.suppress = suppress


class SmtpUtf8Unsupported(PermanentSendError):
    """The address needs SMTPUTF8 and this server does not offer it: this recipient alone fails."""

    def __init__(self) -> None:
        super().__init__("server does not support SMTPUTF8", suppress=False)


class Mailer(Protocol):
    """Hands one flattened message to the mail system."""

    def send(
        self, mail_from: str, recipient: str, message: bytes, smtputf8: bool = False
    ) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the SMTP server."""

    host: str = "localhost"
    port: int = 1025
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    ssl: bool = False
    timeout: float = 30.0


def _transmit(
    smtp: smtplib.SMTP, mail_from: str, recipient: str, message: bytes, smtputf8: bool = False
) -> None:
    """``smtplib.SMTP.sendmail`` for one recipient and a message already in CRLF form.

    The same exceptions as ``sendmail``, plus :class:`SmtpUtf8Unsupported`; the difference is
    that the message is scanned for lines starting with a dot only when it has one (``sendmail``
    runs a regular expression over every message, a measurable share of the fan-out's CPU),
    and that the envelope is pipelined where the server offers it (:func:`_pipeline_envelope`).
    """
    smtp.ehlo_or_helo_if_needed()
    # Bodies are 8-bit UTF-8: say so where the server understands it.
    options = ["BODY=8BITMIME"] if smtp.has_extn("8bitmime") else []
    if smtputf8:
        if not smtp.has_extn("smtputf8"):
            raise SmtpUtf8Unsupported()
        options.append("SMTPUTF8")
    # smtplib switches the command encoding to UTF-8 for SMTPUTF8 and never back: set it for
    # every transaction so an ASCII-only one never goes out as UTF-8 by accident.
    smtp.command_encoding = "utf-8" if smtputf8 else "ascii"
    if smtp.has_extn("pipelining"):
        _pipeline_envelope(smtp, mail_from, recipient, options)
    else:
        code, reply = smtp.mail(mail_from, options)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, reply, mail_from)
        code, reply = smtp.rcpt(recipient)
        if code not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
        code, reply = smtp.docmd("data")
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
    if message.startswith(b".") or b"\n." in message:
        message = re.sub(rb"(?m)^\.", b"..", message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    smtp.send(message + b".\r\n")
    code, reply = smtp.getreply()
    if code != 250:
        raise smtplib.SMTPDataError(code, reply)


def _command_line(line: str) -> str:
    """``line`` ended by CRLF; like smtplib's ``putcmd``, a newline inside it is refused."""
    if "\r" in line or "\n" in line:
        raise ValueError(f"command and arguments contain prohibited newline characters: {line!r}")
    return line + "\r\n"


#: An address ``smtplib.quoteaddr`` would only put in angle brackets (no display name, comment,
#: quotes, route or white space): quoted here without its RFC 5322 parser, a measurable share of
#: the fan-out's CPU at two addresses per mail.
_PLAIN_ADDRESS = re.compile(r"[^\s<>()\[\]\\,;:\"@]+@[^\s<>()\[\]\\,;:\"@]+")


def _quoted(address: str) -> str:
    if _PLAIN_ADDRESS.fullmatch(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


def _pipeline_envelope(
    smtp: smtplib.SMTP, mail_from: str, recipient: str, options: list[str]
) -> None:
    """MAIL, RCPT and DATA in one write, then their three replies (ESMTP PIPELINING, RFC 2920).

    Only for a server that offers PIPELINING. Waiting for each reply before the next command
    costs a round trip per command: this way a message takes two (envelope, then body) instead
    of four. Raises what the one-command-at-a-time path raises, for the first refusal, but only
    after reading every reply, so the connection stays in step for the caller's RSET and the
    next message. The commands are those ``smtp.mail`` and ``smtp.rcpt`` would send (the same
    address quoting, ``smtp.command_encoding`` applied by ``smtp.send``).
    """
    optionlist = " " + " ".join(options) if options else ""
    smtp.send(
        _command_line(f"mail FROM:{_quoted(mail_from)}{optionlist}")
        + _command_line(f"rcpt TO:{_quoted(recipient)}")
        + _command_line("data")
    )
    refusal: smtplib.SMTPException | None = None
    try:
        code, reply = smtp.getreply()
        if code != 250:
            refusal = smtplib.SMTPSenderRefused(code, reply, mail_from)
        code, reply = smtp.getreply()
        if code not in (250, 251) and refusal is None:
            refusal = smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
        code, reply = smtp.getreply()
        if code == 354 and refusal is not None:
            # DATA accepted although the envelope was not (unusual, but then the server waits
            # for a message): end an empty one, whose reply is expected to be a refusal.
            smtp.send(b".\r\n")
            smtp.getreply()
        elif code != 354 and refusal is None:
            refusal = smtplib.SMTPDataError(code, reply)
    except smtplib.SMTPServerDisconnected:
        # A server refusing with 421 hangs up without answering the rest: the refusal is what
        # the one-command-at-a-time path would have reported.
        if refusal is None:
            raise
    if refusal is not None:
        raise refusal


def _classify(code: int, text: str | bytes, suppress: bool = True) -> Exception:
    reason = text.decode(errors="replace") if isinstance(text, bytes) else text
    message = f"{code} {reason}".strip()
    if 400 <= code < 500:
        return TransientSendError(message)
    return PermanentSendError(message, suppress=suppress)


class SmtpMailer:
    """Keeps one SMTP connection open across messages and reconnects when it drops."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        smtp: smtplib.SMTP
        if s.ssl:
            smtp = smtplib.SMTP_SSL(
                s.host, s.port, timeout=s.timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            if s.starttls:
                smtp.starttls(context=ssl.create_default_context())
        if s.username:
            smtp.login(s.username, s.password or "")
        return smtp

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            try:
                self._smtp = self._connect()
            except smtplib.SMTPResponseException as exc:
                metrics.SMTP_CONNECTION_ERRORS.inc()
                raise TransientSendError(
                    f"SMTP connect refused: {exc.smtp_code} {exc.smtp_error!r}"
                ) from exc
            except (OSError, smtplib.SMTPException) as exc:
                metrics.SMTP_CONNECTION_ERRORS.inc()
                raise TransientSendError(f"SMTP server unreachable: {exc}") from exc
        return self._smtp

    def send(self, mail_from: str, recipient: str, message: bytes, smtputf8: bool = False) -> None:
        """Send ``message`` to ``recipient``; raise Transient/PermanentSendError if refused.

        ``smtputf8``: the recipient's address (and so the message's To header) is UTF-8.
        """
        for attempt in (1, 2):
            smtp = self._connection()
            try:
                _transmit(smtp, mail_from, recipient, message, smtputf8)
                return
            except SmtpUtf8Unsupported:
                # The extensions are those of this connection's greeting: a connection opened
                # before the server changed (or dropped by it since) may be out of date. Ask a
                # fresh one before failing the delivery.
                self.close()
                if attempt == 2:
                    raise
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = exc.recipients.get(recipient, (550, b"recipient refused"))
                self._reset_after_refusal(smtp)
                raise _classify(code, text) from exc
            except smtplib.SMTPSenderRefused as exc:
                # Our own sender address refused: a configuration problem, not the recipient's.
                self.close()
                raise TransientSendError(
                    f"sender refused: {exc.smtp_code} {exc.smtp_error!r}"
                ) from exc
            except smtplib.SMTPServerDisconnected as exc:
                self.close()
                if attempt == 2:
                    raise TransientSendError(f"SMTP server disconnected: {exc}") from exc
            except smtplib.SMTPResponseException as exc:
                self.close() if exc.smtp_code == 421 else self._reset_after_refusal(smtp)
                # A 5xx after RCPT was accepted refuses this message, not the address.
                raise _classify(exc.smtp_code, exc.smtp_error, suppress=False) from exc
            except (OSError, smtplib.SMTPException) as exc:
                self.close()
                raise TransientSendError(f"SMTP error: {exc}") from exc

    def _reset_after_refusal(self, smtp: smtplib.SMTP) -> None:
        try:
            smtp.rset()
        except (OSError, smtplib.SMTPException):
            self.close()

    def close(self) -> None:
        """Say goodbye to the server (or just drop a broken connection)."""
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                with contextlib.suppress(OSError):
                    self._smtp.close()
            self._smtp = None
