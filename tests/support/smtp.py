"""The tests' SMTP server: records every accepted message in memory and can refuse on cue.

Built on the project's one SMTP catcher (``tacso_devtools.smtp_catcher``), the same server the
local mail catcher and the compose suite's Mailpit stand-in run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from tacso_devtools.smtp_catcher import ReceivedMail, SMTPCatcher, Stage


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


class RecordingSMTPServer(SMTPCatcher):
    """An SMTP server for tests: records accepted mail; can refuse recipients or messages.

    ``port=0`` picks a free port at the first ``start()``; the port is then kept, so
    ``stop()`` followed by ``start()`` (or ``restart()``) listens on the same port again.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        smtputf8: bool = True,
        pipelining: bool = False,
    ) -> None:
        super().__init__(
            host, port, server_hostname="tacso-test-smtp", smtputf8=smtputf8, pipelining=pipelining
        )
        self._cond = threading.Condition()
        self._messages: list[ReceivedMail] = []
        self._rejections: list[Rejection] = []
        self._failure: tuple[int, str] | None = None
        self._failure_stage: Stage = "RCPT"
        self._recipient_failures: dict[str, tuple[int, str]] = {}

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
