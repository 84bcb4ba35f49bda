"""A stand-in for Mailpit: SMTP in, a subset of Mailpit's HTTP API out (test harness only).

Implemented (shapes as in Mailpit's API v1):
  GET    /api/v1/messages?start=&limit=  newest first: {total, count, start, unread, tags,
                                          messages: [{ID, MessageID, From, To, Cc, Bcc, Subject,
                                          Created, Size, Tags, Read, Attachments, Snippet}]}
  DELETE /api/v1/messages                 delete all (or {"IDs": [...]})
  GET    /api/v1/message/<ID>             {ID, MessageID, From, To, Subject, Date, Text, Size}
  GET    /api/v1/message/<ID>/headers     {header: [values]}
  GET    /api/v1/message/<ID>/raw         the message as received
  GET    /readyz, /livez                  200
Environment: MP_SMTP_BIND_ADDR (0.0.0.0:1025), MP_UI_BIND_ADDR (0.0.0.0:8025),
MP_MAX_MESSAGES (500; 0 = unlimited, oldest deleted first). Messages live in memory.
`mailpit readyz` exits 0 when the HTTP side answers (the official image's health command).

The SMTP side is the project's one catcher, ``tacso_devtools.smtp_catcher`` (prepare.sh copies
that file into the image; it needs only aiosmtpd); this file adds Mailpit's API on top.
"""

from __future__ import annotations

import collections
import email
import email.header
import email.policy
import email.utils
import itertools
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tacso_devtools.smtp_catcher import ReceivedMail, SMTPCatcher

LOCK = threading.Lock()
MESSAGES: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
MAX = int(os.environ.get("MP_MAX_MESSAGES", "500") or 0)
SEQ = itertools.count()
ANY_ADDRESS = "0.0.0.0"  # noqa: S104 - a container listens on its own interfaces


def split_addr(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host or ANY_ADDRESS, int(port)


def addresses(values: list[str]) -> list[dict[str, str]]:
    return [{"Name": n, "Address": a} for n, a in email.utils.getaddresses(values) if a]


class MailpitCatcher(SMTPCatcher):
    """Keeps each accepted message in memory, in the shape Mailpit's API returns it."""

    def _record(self, mail: ReceivedMail) -> None:
        store(mail)


def store(mail: ReceivedMail) -> None:
    """Add one message to MESSAGES (dropping the oldest beyond MP_MAX_MESSAGES)."""
    raw = mail.data
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    mid = uuid.uuid4().hex
    text = ""
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            payload = payload if isinstance(payload, bytes) else b""
            text = payload.decode(part.get_content_charset() or "utf-8", "replace")
            break
    subject = str(email.header.make_header(email.header.decode_header(msg.get("Subject", ""))))
    headers: dict[str, list[str]] = {}
    for k, v in msg.items():
        headers.setdefault(k, []).append(str(v))
    to = addresses(msg.get_all("To", []))
    if not to:
        to = [{"Name": "", "Address": a} for a in mail.rcpt_tos]
    item = {
        "ID": mid,
        "MessageID": (msg.get("Message-ID") or "").strip("<> "),
        "Read": False,
        "From": (addresses(msg.get_all("From", [])) or [{"Name": "", "Address": mail.mail_from}])[
            0
        ],
        "To": to,
        "Cc": addresses(msg.get_all("Cc", [])),
        "Bcc": [],
        "ReplyTo": addresses(msg.get_all("Reply-To", [])),
        "Subject": subject,
        "Created": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
        "Tags": [],
        "Size": len(raw),
        "Attachments": 0,
        "Snippet": " ".join(text.split())[:250],
        "_headers": headers,
        "_raw": raw,
        "_text": text,
        "_seq": next(SEQ),
    }
    with LOCK:
        MESSAGES[mid] = item
        while MAX and len(MESSAGES) > MAX:
            MESSAGES.popitem(last=False)


def public(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if not k.startswith("_")}


class Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: object, ctype: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path in ("/readyz", "/livez"):
            return self._send(200, b"ok", "text/plain")
        if url.path == "/api/v1/messages":
            start = int(query.get("start", ["0"])[0])
            limit = int(query.get("limit", ["50"])[0])
            with LOCK:
                items = list(reversed(MESSAGES.values()))
            page = [public(m) for m in items[start : start + limit]]
            unread = sum(1 for m in items if not m["Read"])
            return self._send(
                200,
                {
                    "total": len(items),
                    "unread": unread,
                    "count": len(page),
                    "messages_count": len(items),
                    "start": start,
                    "tags": [],
                    "messages": page,
                },
            )
        match = re.fullmatch(r"/api/v1/message/([0-9a-f]+)(/headers|/raw)?", url.path)
        if match:
            with LOCK:
                item = MESSAGES.get(match.group(1))
            if item is None:
                return self._send(404, b"message not found", "text/plain")
            if match.group(2) == "/headers":
                return self._send(200, item["_headers"])
            if match.group(2) == "/raw":
                return self._send(200, item["_raw"], "text/plain")
            body = public(item)
            body.update({"Date": item["Created"], "Text": item["_text"], "HTML": ""})
            return self._send(200, body)
        return self._send(404, b"not found", "text/plain")

    def do_DELETE(self) -> None:
        if urllib.parse.urlsplit(self.path).path != "/api/v1/messages":
            return self._send(404, b"not found", "text/plain")
        length = int(self.headers.get("Content-Length") or 0)
        ids = (json.loads(self.rfile.read(length) or b"{}") or {}).get("IDs") if length else None
        with LOCK:
            if ids:
                for i in ids:
                    MESSAGES.pop(i, None)
            else:
                MESSAGES.clear()
        return self._send(200, b"ok", "text/plain")


def readyz() -> int:
    host, port = split_addr(os.environ.get("MP_UI_BIND_ADDR", f"{ANY_ADDRESS}:8025"))
    host = "127.0.0.1" if host in (ANY_ADDRESS, "", "[::]") else host
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/readyz", timeout=3) as r:
            return 0 if r.status == 200 else 1
    except OSError:
        return 1


def main() -> int:
    if sys.argv[1:2] == ["readyz"]:
        return readyz()
    smtp_host, smtp_port = split_addr(os.environ.get("MP_SMTP_BIND_ADDR", f"{ANY_ADDRESS}:1025"))
    catcher = MailpitCatcher(smtp_host, smtp_port, server_hostname="mailpit")
    catcher.start()
    http_host, http_port = split_addr(os.environ.get("MP_UI_BIND_ADDR", f"{ANY_ADDRESS}:8025"))
    print(
        f"mailpit stand-in: SMTP {smtp_host}:{smtp_port}, HTTP {http_host}:{http_port}, "
        f"max {MAX or 'unlimited'} messages",
        flush=True,
    )
    server = ThreadingHTTPServer((http_host, http_port), Api)

    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
    catcher.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
