"""The one SMTP catcher: an aiosmtpd server that hands every accepted message to its owner.

Three things catch mail and all are built on :class:`SMTPCatcher`: the local mail catcher of
``make up`` (``tacso_devtools.mailcatcher``, stores .eml files), the tests' recording server
(``tests/support/smtp.py``, keeps messages in memory and refuses on cue) and the compose suite's
Mailpit stand-in (``tests/compose/standins/mailpit``, serves Mailpit's HTTP API). This module
needs only the standard library and aiosmtpd (1.4.3 or later, Debian 12's), so the stand-in image
copies this one file instead of installing the project.

The server runs its own event loop in a daemon thread (aiosmtpd's threaded ``Controller``), so
synchronous code talks to it with plain SMTP.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from functools import cached_property
from types import TracebackType
from typing import Any, Literal, Self
from weakref import WeakSet

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

# Notify sends big HTML mails with attachments (iCalendar files, images): a catcher must never
# be the reason a send fails.
DATA_SIZE_LIMIT = 100 * 1024 * 1024

#: The SMTP command a refusal answers: a recipient (RCPT TO) or the whole message (DATA).
Stage = Literal["RCPT", "DATA"]


@dataclass(frozen=True)
class ReceivedMail:
    """One message the server accepted: the SMTP envelope and the raw bytes of the message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes

    @cached_property
    def message(self) -> EmailMessage:
        """The message parsed with ``email.policy.default`` (headers decoded, MIME helpers)."""
        # cached_property writes to the instance __dict__ directly, which frozen allows.
        parsed = BytesParser(policy=default_policy).parsebytes(self.data)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def header(self, name: str) -> str | None:
        """The decoded value of header ``name`` (the first one if repeated), or None."""
        value = self.message[name]
        return None if value is None else str(value)

    @property
    def subject(self) -> str | None:
        """The decoded Subject header."""
        return self.header("Subject")

    def body_text(self) -> str:
        """The text/plain body (else the HTML one), decoded, with LF line endings."""
        part = self.message.get_body(preferencelist=("plain", "html"))
        if part is None:
            return ""
        # SMTP carries CRLF line endings; callers compare with the text the service composed.
        return str(part.get_content()).replace("\r\n", "\n")


class _Handler:
    """aiosmtpd handler hooks; every decision is the owning SMTPCatcher's."""

    def __init__(self, owner: SMTPCatcher) -> None:
        self._owner = owner

    async def handle_RCPT(  # aiosmtpd looks hooks up by this name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        refusal = self._owner._refusal_for("RCPT", envelope.mail_from or "", address)
        if refusal is not None:
            return refusal
        # Defining handle_RCPT means aiosmtpd no longer records the recipient itself.
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(  # aiosmtpd looks hooks up by this name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        mail_from = envelope.mail_from or ""
        refusal = self._owner._refusal_for("DATA", mail_from, ",".join(envelope.rcpt_tos))
        if refusal is not None:
            return refusal
        content = envelope.original_content or envelope.content or b""
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        self._owner._record(ReceivedMail(mail_from, tuple(envelope.rcpt_tos), data))
        return "250 2.0.0 Message accepted for delivery"


class _PipeliningHandler(_Handler):
    """The hooks of :class:`_Handler`, and PIPELINING (RFC 2920) added to the EHLO reply.

    aiosmtpd reads commands one line at a time, so it serves pipelined clients correctly; it
    just does not say so.
    """

    async def handle_EHLO(  # aiosmtpd looks hooks up by this name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        # With this hook aiosmtpd leaves remembering the client's name to it.
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


class _Controller(Controller):
    """A Controller that serves on a socket bound beforehand, and drops clients on stop.

    Binding first lets port 0 work (aiosmtpd's readiness probe connects to ``self.port``, so it
    must be the real port) and sets SO_REUSEADDR so a restart on the same port succeeds while
    old connections are still in TIME_WAIT.
    """

    def __init__(self, handler: _Handler, sock: socket.socket, **smtp_kwargs: Any) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **smtp_kwargs)
        self._sock = sock
        self._sessions: WeakSet[SMTP] = WeakSet()

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self.loop.create_server(self._factory_invoker, sock=self._sock)

    def factory(self) -> SMTP:
        smtp: SMTP = super().factory()  # type: ignore[no-untyped-call]
        self._sessions.add(smtp)
        return smtp

    def cancel_tasks(self, stop_loop: bool = True) -> None:
        # Runs on the loop thread when stop() is called. Closing the listener and aborting the
        # open sessions makes "the SMTP server went away" visible to connected clients at once
        # instead of leaving them hanging on a socket nobody reads.
        if self.server is not None:
            self.server.close()
        for smtp in list(self._sessions):
            transport = smtp.transport
            if transport is not None:
                transport.abort()  # type: ignore[attr-defined]
        super().cancel_tasks(stop_loop)


class SMTPCatcher:
    """An SMTP server that accepts mail for anyone and passes each message to ``_record``.

    Subclasses decide what catching means: override ``_record`` (store the message) and,
    to turn mail away, ``_refusal_for``. Both run on the server's thread.

    ``port=0`` picks a free port at the first ``start()``; the port is then kept, so
    ``stop()`` followed by ``start()`` (or ``restart()``) listens on the same port again.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        server_hostname: str = "tacso-mailcatcher",
        smtputf8: bool = True,
        pipelining: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.server_hostname = server_hostname
        #: Whether the server offers the SMTPUTF8 extension (RFC 6531); read at each start().
        self.smtputf8 = smtputf8
        #: Whether the server offers PIPELINING (RFC 2920); read at each start().
        self.pipelining = pipelining
        self._controller: _Controller | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start listening (on the same port as before if this server ran already)."""
        if self._controller is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            controller = _Controller(
                (_PipeliningHandler if self.pipelining else _Handler)(self),
                sock,
                server_hostname=self.server_hostname,  # avoids a slow getfqdn() per connection
                data_size_limit=DATA_SIZE_LIMIT,
                enable_SMTPUTF8=self.smtputf8,
                decode_data=False,
                auth_required=False,
                # Senders may keep a connection open between messages.
                timeout=300,
            )
            self.port = sock.getsockname()[1]
            controller.start()
        except BaseException:
            sock.close()
            raise
        self._controller = controller

    def stop(self) -> None:
        """Stop listening and drop open connections; the port is free again on return."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def restart(self, down_for: float = 0.0) -> None:
        """Stop, stay down ``down_for`` seconds, and start again on the same port."""
        self.stop()
        if down_for > 0:
            time.sleep(down_for)
        self.start()

    @property
    def running(self) -> bool:
        """Whether the server is currently listening."""
        return self._controller is not None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- hooks, called from the server thread ----------------------------------------------

    def _record(self, mail: ReceivedMail) -> None:
        """Keep an accepted message (the base class drops it)."""

    def _refusal_for(self, stage: Stage, mail_from: str, address: str) -> str | None:
        """The SMTP reply refusing this recipient (RCPT) or message (DATA); None accepts."""
        return None
