"""Postfix's ``smtp-sink`` as the SMTP server, with a counter the benchmark can wait on.

``smtp-sink -c`` writes ``sess=.. quit=.. mesg=<n>\\r`` to stdout each time it receives the
final ``.`` of a DATA command (the moment it replies 250: the message is accepted). A reader
thread timestamps every chunk it reads from that pipe, so the benchmark knows when the first and
the last of a batch were accepted without any proxy in the SMTP path.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time

from bench.common import require_tool
from support.stack import free_port

_MSG = re.compile(rb"mesg=(\d+)")


class SinkTimeout(Exception):
    pass


class SmtpSink:
    """One ``smtp-sink`` process on 127.0.0.1 and a running count of accepted messages."""

    def __init__(self, backlog: int = 256) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.backlog = backlog
        self.count = 0
        #: (monotonic time, count) at each change, kept for the timeline of a batch.
        self._changes: list[tuple[float, int]] = []
        self._cond = threading.Condition()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        binary = require_tool("smtp-sink")
        args = [binary, "-c"]
        if os.geteuid() == 0:
            args += ["-u", "postfix"]
        args += [f"{self.host}:{self.port}", str(self.backlog)]
        self._proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0
        )
        self._thread = threading.Thread(target=self._read, name="smtp-sink-counter", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        import socket

        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("smtp-sink did not start")

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while True:
            chunk = os.read(fd, 65536)
            now = time.monotonic()
            if not chunk:
                return
            found = _MSG.findall(chunk)
            if not found:
                continue
            value = int(found[-1])
            with self._cond:
                if value != self.count:
                    self.count = value
                    self._changes.append((now, value))
                    self._cond.notify_all()

    def mark(self) -> int:
        """The current count (a batch's base) and drop the timeline kept so far."""
        with self._cond:
            self._changes.clear()
            return self.count

    def wait_for(self, target: int, stall_timeout: float = 60.0) -> float:
        """Block until ``target`` messages were accepted in all; return when that happened.

        Raises :class:`SinkTimeout` if the count does not move for ``stall_timeout`` seconds.
        """
        with self._cond:
            last_count, last_move = self.count, time.monotonic()
            while self.count < target:
                self._cond.wait(timeout=1.0)
                if self.count != last_count:
                    last_count, last_move = self.count, time.monotonic()
                elif time.monotonic() - last_move > stall_timeout:
                    raise SinkTimeout(f"stuck at {self.count} of {target} for {stall_timeout}s")
            for when, value in self._changes:
                if value >= target:
                    return when
            return time.monotonic()

    def first_after(self, base: int) -> float | None:
        """When the first message after ``base`` was accepted (None if none yet)."""
        with self._cond:
            for when, value in self._changes:
                if value > base:
                    return when
        return None

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self._proc = None
