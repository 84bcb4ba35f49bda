"""Polling waits for tests: wait for a condition instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_UNSET = object()


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str = "",
) -> T:
    """Return the first truthy value of ``predicate()``; raise AssertionError after ``timeout``.

    An exception raised by ``predicate`` counts as "not yet"; the last value or exception is
    put in the error so a timeout says what was seen, not only that something took too long.
    """
    deadline = time.monotonic() + timeout
    last_value: object = _UNSET
    last_error: BaseException | None = None
    attempts = 0
    while True:
        attempts += 1
        try:
            value = predicate()
        except Exception as exc:  # noqa: BLE001 - any failure of the predicate means "not yet"
            last_error = exc
        else:
            if value:
                return value
            last_value, last_error = value, None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(min(interval, remaining))
    what = message or getattr(predicate, "__qualname__", repr(predicate))
    if last_error is not None:
        seen = f"last attempt raised {type(last_error).__name__}: {last_error}"
    else:
        seen = f"last value {last_value!r}"
    raise AssertionError(
        f"timed out after {timeout:g}s ({attempts} attempts) waiting for {what}; {seen}"
    ) from last_error
