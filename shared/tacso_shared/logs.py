"""Logging of every TACSO process: one JSON object per line, or readable text for ``make up``.

Each line carries the time, the level, the service, the process role (``api``, ``relay``,
``worker``, ...), the logger, the message and the current correlation id
(:mod:`tacso_shared.correlation`), so that ``grep <id>`` over all logs shows an event's whole path.
``LOG_FORMAT=text`` keeps the one-line text form for reading in a terminal.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from tacso_shared import correlation

LOG_FORMATS = ("json", "text")


class ProcessContext(logging.Filter):
    """Adds the service, the process role and the correlation id to every record it sees."""

    def __init__(self, service: str, role: str) -> None:
        super().__init__()
        self.service = service
        self.role = role

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate ``record`` (never drops one)."""
        record.service = self.service
        record.role = self.role
        cid = correlation.current()
        record.correlation_id = cid
        # For the text form: the id when there is one, nothing otherwise.
        record.correlation_tag = f" [cid={cid}]" if cid else ""
        return True


class _JsonLines(JsonFormatter):
    """python-json-logger's formatter, with the time as the first key (where readers look)."""

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        """``log_data`` with ``time`` moved to the front."""
        return {"time": log_data.pop("time", None), **log_data}


def _formatter(log_format: str) -> logging.Formatter:
    if log_format == "text":
        return logging.Formatter(
            "%(asctime)s %(service)s %(role)s %(process)d %(levelname)s %(name)s: %(message)s"
            "%(correlation_tag)s"
        )
    return _JsonLines(
        ["levelname", "service", "role", "process", "name", "message", "correlation_id"],
        rename_fields={"levelname": "level", "name": "logger", "process": "pid"},
        timestamp="time",
        reserved_attrs=[*RESERVED_ATTRS, "correlation_tag"],
        json_ensure_ascii=False,
    )


_context: ProcessContext | None = None


def setup_logging(
    service: str, level: str = "INFO", log_format: str = "json", role: str = "cli"
) -> None:
    """Log to stderr, one line per record, in ``log_format`` (``LOG_FORMAT``: json or text)."""
    global _context
    _context = ProcessContext(service, role)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_formatter(log_format if log_format in LOG_FORMATS else "json"))
    handler.addFilter(_context)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("amqp").setLevel(logging.WARNING)


def set_role(role: str) -> None:
    """Name the role of this process (the command it runs) in every line from now on."""
    if _context is not None:
        _context.role = role


def route_to_root(*loggers: logging.Logger) -> None:
    """Let ``loggers`` (gunicorn's, which install their own) write through our handler instead."""
    for logger in loggers:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
