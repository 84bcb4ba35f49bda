"""The correlation id: one id that follows an event from the POST to every mail it causes.

It is generated at the edge (:mod:`tacso_shared.web`) when the client sends none, stored in the
outbox envelope (``correlationid``), carried by every message and page task derived from it,
set as ``X-Correlation-ID`` on each mail, and attached to every log line written while it is
current (:mod:`tacso_shared.logs`). It lives in a context variable, so each request thread and
each message handler sees only its own.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: The HTTP header (request and response) and the mail header that carry the id.
HEADER = "X-Correlation-ID"

#: What a client may send: short, printable, no spaces, safe in a log line and a mail header.
_VALID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

_current: ContextVar[str | None] = ContextVar("tacso_correlation_id", default=None)


def current() -> str | None:
    """The correlation id of the request or message being handled, if any."""
    return _current.get()


def new() -> str:
    """A fresh correlation id."""
    return str(uuid.uuid4())


def accept(value: str | None) -> str:
    """``value`` if a client may set it (see :data:`_VALID`), otherwise a fresh id.

    A value that could break a header or forge a log line is replaced, not refused: tracing must
    never fail a request.
    """
    if value is not None and _VALID.fullmatch(value):
        return value
    return new()


def set_current(value: str | None) -> None:
    """Make ``value`` current for the rest of this context (a request thread)."""
    _current.set(value)


@contextmanager
def bound(value: str | None) -> Iterator[None]:
    """Make ``value`` current for the duration of the block (a message being handled)."""
    token = _current.set(value)
    try:
        yield
    finally:
        _current.reset(token)
