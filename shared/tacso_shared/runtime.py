"""Running a service's processes: logging, gunicorn for the API, signals for workers and relays."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication


def setup_logging(service: str) -> None:
    """One line per record, with the service name, level from ``LOG_LEVEL`` (default INFO)."""
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format=f"%(asctime)s {service} %(process)d %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("amqp").setLevel(logging.WARNING)


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, factory: Callable[[], Flask], options: dict[str, Any]) -> None:
        self._factory = factory
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self._factory()


def serve(factory: Callable[[], Flask], port: int, workers: int) -> None:
    """Serve the app from ``factory`` with gunicorn (each worker builds its own app)."""
    options = {
        # All interfaces by default: in a container the published port must reach it.
        "bind": f"{os.environ.get('BIND_HOST', '0.0.0.0')}:{port}",  # noqa: S104
        "workers": workers,
        "worker_class": "gthread",
        "threads": int(os.environ.get("WEB_THREADS", "4")),
        "timeout": 30,
        "graceful_timeout": 10,
        "accesslog": os.environ.get("ACCESS_LOG") or None,
        "preload_app": False,
    }
    _Gunicorn(factory, options).run()


def run_until_signalled(run: Callable[[], None], stop: Callable[[], None]) -> None:
    """Run a blocking loop; SIGTERM and SIGINT call ``stop`` so it can finish cleanly."""

    def _handler(signum: int, _frame: Any) -> None:
        logging.getLogger(__name__).info("signal %d: stopping", signum)
        stop()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    run()
