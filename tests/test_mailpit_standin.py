"""The compose suite's Mailpit stand-in: the project's SMTP catcher behind Mailpit's HTTP API.

Run in-process here (no Docker), so a change to the shared catcher that would break the image
is caught by ``make unit``.
"""

from __future__ import annotations

import ast
import importlib.util
import smtplib
import sys
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests

from support.waiting import wait_until
from tacso_devtools import smtp_catcher

STANDIN = Path(__file__).parent / "compose" / "standins" / "mailpit" / "mailpit.py"


@pytest.fixture
def mailpit() -> Iterator[tuple[ModuleType, int, int]]:
    """The stand-in module, running: (module, SMTP port, HTTP port)."""
    spec = importlib.util.spec_from_file_location("mailpit_standin", STANDIN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    catcher = module.MailpitCatcher("127.0.0.1", 0)
    catcher.start()
    http = module.ThreadingHTTPServer(("127.0.0.1", 0), module.Api)
    thread = threading.Thread(target=http.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield module, catcher.port, http.server_address[1]
    finally:
        http.shutdown()
        http.server_close()
        catcher.stop()


def _call(port: int, path: str, method: str = "GET") -> Any:
    response = requests.request(method, f"http://127.0.0.1:{port}{path}", timeout=5)
    response.raise_for_status()
    if response.headers["Content-Type"] == "application/json":
        return response.json()
    return response.content


def test_mail_sent_over_smtp_is_listed_by_mailpits_api(
    mailpit: tuple[ModuleType, int, int],
) -> None:
    _module, smtp_port, http_port = mailpit
    message = EmailMessage()
    message["From"] = "events@tacso.local"
    message["To"] = "Ana <ana@example.org>"
    message["Subject"] = "Poziv: radionica"
    message["X-TACSO-Kind"] = "invitation"
    message.set_content("Dobrodošli.\n")
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
        client.send_message(message, to_addrs=["ana@example.org"])

    listing = wait_until(lambda: _call(http_port, "/api/v1/messages")["messages"], timeout=5)
    [item] = listing
    assert item["To"] == [{"Name": "Ana", "Address": "ana@example.org"}]
    assert item["Subject"] == "Poziv: radionica"
    assert _call(http_port, f"/api/v1/message/{item['ID']}/headers")["X-TACSO-Kind"] == [
        "invitation"
    ]
    assert b"Subject: Poziv: radionica" in _call(http_port, f"/api/v1/message/{item['ID']}/raw")
    assert _call(http_port, f"/api/v1/message/{item['ID']}")["Text"].splitlines() == ["Dobrodošli."]

    _call(http_port, "/api/v1/messages", method="DELETE")
    assert _call(http_port, "/api/v1/messages")["total"] == 0


def test_the_shared_catcher_needs_only_the_standard_library_and_aiosmtpd() -> None:
    # The stand-in image copies this one file onto Debian's python3 and python3-aiosmtpd.
    tree = ast.parse(Path(smtp_catcher.__file__).read_text())
    imported = {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    } | {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert imported - sys.stdlib_module_names == {"aiosmtpd"}
