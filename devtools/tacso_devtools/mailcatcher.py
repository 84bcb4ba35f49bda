"""The local development mail catcher: an SMTP server that keeps every mail as an .eml file.

The SMTP side is the project's one catcher (``tacso_devtools.smtp_catcher``), the same server the
tests record mail with.

``make up`` points notify at it, so nothing leaves the machine. Mail lands in ``MAIL_DIR``
(default ``var/mail/``) and can be browsed at http://127.0.0.1:8025/ or listed as JSON at
``/api/messages``.

Settings (environment): ``MAILCATCHER_HOST`` (127.0.0.1), ``MAILCATCHER_PORT`` (1025),
``MAILCATCHER_HTTP_PORT`` (8025), ``MAIL_DIR`` (var/mail/).
"""

from __future__ import annotations

import html
import itertools
import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from tacso_devtools.smtp_catcher import ReceivedMail, SMTPCatcher
from tacso_shared.config import env_int, env_str
from tacso_shared.runtime import run_until_signalled, setup_logging

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_SMTP_PORT = 1025
DEFAULT_HTTP_PORT = 8025
DEFAULT_MAIL_DIR = "var/mail/"
# The page and the API list at most this many messages, newest first.
LIST_LIMIT = 500

# The envelope recipients are not always in the headers (Bcc, media lists), so the catcher
# prepends them the way a delivering MTA adds Return-Path / Delivered-To.
ENVELOPE_FROM_HEADER = "X-Mailcatcher-Envelope-From"
ENVELOPE_TO_HEADER = "X-Mailcatcher-Envelope-To"

_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]+")
_FILE_NAME = re.compile(r"^[A-Za-z0-9@._+-]+\.eml$")
_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%S.%fZ"


@dataclass(frozen=True)
class MailCatcherConfig:
    """Where the catcher listens and where it stores mail."""

    host: str = DEFAULT_HOST
    smtp_port: int = DEFAULT_SMTP_PORT
    http_port: int = DEFAULT_HTTP_PORT
    mail_dir: Path = Path(DEFAULT_MAIL_DIR)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MailCatcherConfig:
        """Read the settings from environment variables, with the defaults above."""
        return cls(
            host=env_str(env, "MAILCATCHER_HOST", DEFAULT_HOST),
            smtp_port=env_int(env, "MAILCATCHER_PORT", DEFAULT_SMTP_PORT),
            http_port=env_int(env, "MAILCATCHER_HTTP_PORT", DEFAULT_HTTP_PORT),
            mail_dir=Path(env_str(env, "MAIL_DIR", DEFAULT_MAIL_DIR)),
        )


def _sanitise(address: str) -> str:
    cleaned = _UNSAFE.sub("_", address).strip("._") or "unknown"
    return cleaned[:80]


class MailStore:
    """The folder of .eml files: writes new mail, lists and reads what is there."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def save(self, mail_from: str, rcpt_tos: list[str], data: bytes) -> Path:
        """Store one message; return its path. Never overwrites an earlier message."""
        self.directory.mkdir(parents=True, exist_ok=True)
        envelope = (
            f"{ENVELOPE_FROM_HEADER}: {mail_from}\r\n"
            f"{ENVELOPE_TO_HEADER}: {', '.join(rcpt_tos)}\r\n"
        ).encode()
        recipient = _sanitise(rcpt_tos[0]) if rcpt_tos else "unknown"
        if len(rcpt_tos) > 1:
            recipient += f"+{len(rcpt_tos) - 1}more"
        while True:
            with self._lock:
                number = next(self._counter)
            stamp = datetime.now(UTC).strftime(_TIMESTAMP_FORMAT)
            path = self.directory / f"{stamp}-{number:06d}-{recipient}.eml"
            temporary = path.with_name(f".{path.name}.tmp")
            try:
                # Exclusive create, then rename: a listing never sees a half-written file, and
                # two catchers sharing a folder cannot overwrite each other.
                with temporary.open("xb") as out:
                    out.write(envelope + data)
            except FileExistsError:
                continue
            if path.exists():
                temporary.unlink()
                continue
            temporary.rename(path)
            return path

    def list(self, limit: int = LIST_LIMIT) -> list[dict[str, str]]:
        """The newest ``limit`` messages as {"file", "to", "subject", "date"}, newest first."""
        try:
            with os.scandir(self.directory) as entries:
                names = [entry.name for entry in entries if _FILE_NAME.match(entry.name)]
        except FileNotFoundError:
            return []
        names.sort(reverse=True)  # names start with a UTC timestamp: newest first
        items = []
        for name in names[:limit]:
            try:
                items.append(self._summary(name))
            except OSError:
                continue  # deleted while listing
        return items

    def read(self, name: str) -> bytes | None:
        """The raw bytes of the message file ``name``, or None if there is no such message."""
        if not _FILE_NAME.match(name) or name.startswith("."):
            return None
        path = self.directory / name
        try:
            return path.read_bytes()
        except OSError:
            return None

    def _summary(self, name: str) -> dict[str, str]:
        with (self.directory / name).open("rb") as raw:
            headers = BytesHeaderParser(policy=default_policy).parse(raw)
        to = headers.get(ENVELOPE_TO_HEADER) or headers.get("To") or ""
        return {
            "file": name,
            "to": str(to),
            "subject": str(headers.get("Subject") or ""),
            "date": _received_at(name),
        }


def _received_at(name: str) -> str:
    stamp = name.split("-", 1)[0]
    try:
        when = datetime.strptime(stamp, _TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return ""
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


class _StoringCatcher(SMTPCatcher):
    """The SMTP side: accept every recipient and store every message in the folder."""

    def __init__(self, store: MailStore, host: str, port: int) -> None:
        super().__init__(host, port)
        self._store = store

    def _record(self, mail: ReceivedMail) -> None:
        path = self._store.save(mail.mail_from, list(mail.rcpt_tos), mail.data)
        log.info("mail from %s to %s stored as %s", mail.mail_from, list(mail.rcpt_tos), path)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>TACSO mail catcher</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: .3em .6em; border-bottom: 1px solid #ddd; }}
</style></head>
<body><h1>Mail caught ({count})</h1>
<p>Stored in <code>{directory}</code>. Newest first; reload to refresh.
JSON: <a href="/api/messages">/api/messages</a></p>
<table><thead><tr><th>Received (UTC)</th><th>To</th><th>Subject</th><th>Raw</th></tr></thead>
<tbody>
{rows}
</tbody></table></body></html>
"""


def _make_http_handler(store: MailStore) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """Read-only pages: the message list, the JSON API and the raw messages."""

        server_version = "tacso-mailcatcher"

        def do_GET(self) -> None:  # http.server dispatches on this name
            path = unquote(urlsplit(self.path).path)
            if path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, "text/html; charset=utf-8", self._page())
            elif path == "/api/messages":
                body = json.dumps(store.list(), ensure_ascii=False).encode()
                self._send(HTTPStatus.OK, "application/json", body)
            elif path.startswith("/messages/"):
                raw = store.read(path.removeprefix("/messages/"))
                if raw is None:
                    self._send(HTTPStatus.NOT_FOUND, "text/plain", b"no such message\n")
                else:
                    # text/plain so the browser shows the message instead of downloading it.
                    self._send(HTTPStatus.OK, "text/plain; charset=utf-8", raw)
            else:
                self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")

        def _page(self) -> bytes:
            items = store.list()
            rows = "\n".join(
                "<tr><td>{date}</td><td>{to}</td><td>{subject}</td>"
                '<td><a href="/messages/{href}">{file}</a></td></tr>'.format(
                    date=html.escape(item["date"]),
                    to=html.escape(item["to"]),
                    subject=html.escape(item["subject"]),
                    href=html.escape(quote(item["file"], safe="@+")),
                    file=html.escape(item["file"]),
                )
                for item in items
            )
            page = _PAGE.format(
                count=len(items), directory=html.escape(str(store.directory)), rows=rows
            )
            return page.encode("utf-8")

        def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http: " + format, *args)

    return Handler


class MailCatcher:
    """The SMTP server and the HTTP page together; ``start()`` and ``stop()`` both."""

    def __init__(self, config: MailCatcherConfig) -> None:
        self.config = config
        self.store = MailStore(config.mail_dir)
        self._smtp: _StoringCatcher | None = None
        self._http: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None

    @property
    def smtp_port(self) -> int:
        """The SMTP port actually listened on (differs from the config when that was 0)."""
        return self._smtp.port if self._smtp is not None else self.config.smtp_port

    @property
    def http_port(self) -> int:
        """The HTTP port actually listened on (differs from the config when that was 0)."""
        return self._http.server_address[1] if self._http is not None else self.config.http_port

    def start(self) -> None:
        """Create the mail folder, then start the SMTP server and the HTTP page."""
        self.config.mail_dir.mkdir(parents=True, exist_ok=True)
        http_server = ThreadingHTTPServer(
            (self.config.host, self.config.http_port), _make_http_handler(self.store)
        )
        http_server.daemon_threads = True
        smtp = _StoringCatcher(self.store, self.config.host, self.config.smtp_port)
        try:
            smtp.start()
        except BaseException:
            http_server.server_close()
            raise
        self._smtp = smtp
        self._http = http_server
        self._http_thread = threading.Thread(
            target=http_server.serve_forever,
            # shutdown() waits up to one poll interval; keep stopping quick.
            kwargs={"poll_interval": 0.1},
            name="mailcatcher-http",
            daemon=True,
        )
        self._http_thread.start()

    def stop(self) -> None:
        """Stop both servers and free their ports."""
        smtp, self._smtp = self._smtp, None
        http_server, self._http = self._http, None
        if http_server is not None:
            http_server.shutdown()
            http_server.server_close()
        if self._http_thread is not None:
            self._http_thread.join()
            self._http_thread = None
        if smtp is not None:
            smtp.stop()

    def banner(self) -> str:
        """The one startup line: where SMTP listens, where mail goes, where to browse it."""
        host = self.config.host
        return (
            f"mail catcher: SMTP on {host}:{self.smtp_port}, "
            f"mail stored in {self.config.mail_dir.as_posix().rstrip('/')}/, "
            f"browse http://{host}:{self.http_port}/"
        )


def main() -> None:
    """Run the mail catcher until SIGTERM or SIGINT."""
    setup_logging(
        "mailcatcher",
        os.environ.get("LOG_LEVEL", "INFO").upper(),
        os.environ.get("LOG_FORMAT", "json").lower(),
        role="mailcatcher",
    )
    # aiosmtpd logs every SMTP command at INFO; one line per stored mail is enough.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    catcher = MailCatcher(MailCatcherConfig.from_env(os.environ))
    catcher.start()
    stopped = threading.Event()

    def run() -> None:
        # Logged only once the signal handlers are installed, so whoever waits for this line
        # (make up, the tests) may send SIGTERM right after it.
        log.info("%s", catcher.banner())
        # Event.wait() without a timeout is interrupted by signals on POSIX, so the handler's
        # stopped.set() ends it promptly.
        stopped.wait()

    try:
        run_until_signalled(run, stopped.set)
    finally:
        catcher.stop()
        log.info("mail catcher: stopped")


if __name__ == "__main__":
    main()
