"""An in-process SMTP server for tests that records every accepted message and can refuse on cue.

Built on aiosmtpd's threaded ``Controller``: the server runs its own event loop in a daemon
thread, so synchronous test code (and the services under test) talk to it with plain SMTP.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from functools import cached_property
from types import TracebackType
from typing import Any, Literal
from weakref import WeakSet

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

# Notify may send big HTML mails with attachments (iCalendar files, images); never let the
# test server be the reason a send fails.
DATA_SIZE_LIMIT = 100 * 1024 * 1024

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
        # SMTP carries CRLF line endings; tests compare with the text the service composed.
        return str(part.get_content()).replace("\r\n", "\n")


@dataclass(frozen=True)
class Rejection:
    """One recipient (or message) the server refused on purpose, for asserting on retries."""

    stage: Stage
    mail_from: str
    address: str
    code: int
    text: str


def _default_text(code: int) -> str:
    if 400 <= code < 500:
        return "4.3.0 Temporarily unavailable (test server)"
    return "5.0.0 Rejected (test server)"


class _Handler:
    """aiosmtpd handler hooks; all state lives in the owning RecordingSMTPServer."""

    def __init__(self, owner: RecordingSMTPServer) -> None:
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


class _Controller(Controller):
    """A Controller that serves on a socket we bound ourselves, and drops clients on stop.

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


class RecordingSMTPServer:
    """An SMTP server for tests: records accepted mail; can refuse recipients or messages.

    ``port=0`` picks a free port at the first ``start()``; the port is then kept, so
    ``stop()`` followed by ``start()`` (or ``restart()``) listens on the same port again.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, smtputf8: bool = True) -> None:
        self.host = host
        self.port = port
        #: Whether the server offers the SMTPUTF8 extension (RFC 6531).
        self.smtputf8 = smtputf8
        self._cond = threading.Condition()
        self._messages: list[ReceivedMail] = []
        self._rejections: list[Rejection] = []
        self._failure: tuple[int, str] | None = None
        self._failure_stage: Stage = "RCPT"
        self._recipient_failures: dict[str, tuple[int, str]] = {}
        self._controller: _Controller | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start listening (on the same port as before if this server ran already)."""
        if self._controller is not None:
            raise RuntimeError("RecordingSMTPServer is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            controller = _Controller(
                _Handler(self),
                sock,
                server_hostname="tacso-test-smtp",  # avoids a slow getfqdn() per connection
                data_size_limit=DATA_SIZE_LIMIT,
                enable_SMTPUTF8=self.smtputf8,
                decode_data=False,
                auth_required=False,
                # Services under test may keep a connection open between sends.
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

    def __enter__(self) -> RecordingSMTPServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what arrived ----------------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMail]:
        """A snapshot of the accepted messages, oldest first."""
        with self._cond:
            return list(self._messages)

    @property
    def rejections(self) -> list[Rejection]:
        """A snapshot of the refusals made because of set_failure / fail_recipients."""
        with self._cond:
            return list(self._rejections)

    def clear(self) -> None:
        """Forget the recorded messages and rejections (the failure settings stay)."""
        with self._cond:
            self._messages.clear()
            self._rejections.clear()

    def wait_for(
        self,
        count: int,
        timeout: float = 30.0,
        predicate: Callable[[ReceivedMail], bool] | None = None,
    ) -> list[ReceivedMail]:
        """Wait until at least ``count`` messages (matching ``predicate``) arrived; return them.

        Raises AssertionError on timeout, saying how many did arrive.
        """
        matches = predicate or (lambda _mail: True)

        def matching() -> list[ReceivedMail]:
            return [mail for mail in self._messages if matches(mail)]

        with self._cond:
            if self._cond.wait_for(lambda: len(matching()) >= count, timeout):
                return matching()
            found, total = len(matching()), len(self._messages)
            seen = "; ".join(
                f"to={','.join(m.rcpt_tos)} subject={m.subject!r}" for m in self._messages[-10:]
            )
        which = " matching" if predicate is not None else ""
        raise AssertionError(
            f"expected at least {count}{which} message(s) within {timeout:g}s, "
            f"got {found}{which} of {total} received" + (f" (latest: {seen})" if seen else "")
        )

    # -- failure injection -----------------------------------------------------------------

    def set_failure(self, code: int | None, text: str = "", stage: Stage = "RCPT") -> None:
        """Answer every RCPT (or, with ``stage="DATA"``, every DATA) with ``code``.

        With smtplib, a refused RCPT for all recipients raises SMTPRecipientsRefused, a refused
        DATA raises SMTPDataError. ``None`` accepts mail again.
        """
        if code is not None and not 400 <= code < 600:
            raise ValueError(f"an SMTP failure code is 4xx or 5xx, not {code}")
        with self._cond:
            self._failure = None if code is None else (code, text or _default_text(code))
            self._failure_stage = stage

    def fail_recipients(self, mapping: dict[str, tuple[int, str]]) -> None:
        """Refuse RCPT for these addresses (case-insensitive) with (code, text); {} resets."""
        with self._cond:
            self._recipient_failures = {
                address.lower(): (code, text or _default_text(code))
                for address, (code, text) in mapping.items()
            }

    # -- called from the server thread -----------------------------------------------------

    def _refusal_for(self, stage: Stage, mail_from: str, address: str) -> str | None:
        with self._cond:
            failure = self._failure if self._failure_stage == stage else None
            if failure is None and stage == "RCPT":
                failure = self._recipient_failures.get(address.lower())
            if failure is None:
                return None
            code, text = failure
            self._rejections.append(Rejection(stage, mail_from, address, code, text))
            return f"{code} {text}"

    def _record(self, mail: ReceivedMail) -> None:
        with self._cond:
            self._messages.append(mail)
            self._cond.notify_all()
