"""Tests for the development mail catcher: mail is stored as .eml and listed over HTTP."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from support.waiting import wait_until
from tacso_devtools.mailcatcher import MailCatcher, MailCatcherConfig


@pytest.fixture
def catcher(tmp_path: Path) -> Iterator[MailCatcher]:
    config = MailCatcherConfig(host="127.0.0.1", smtp_port=0, http_port=0, mail_dir=tmp_path)
    running = MailCatcher(config)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _get(catcher: MailCatcher, path: str) -> tuple[str, bytes]:
    url = f"http://127.0.0.1:{catcher.http_port}{path}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.headers["Content-Type"], response.read()


def _api(catcher: MailCatcher) -> list[dict[str, Any]]:
    _content_type, body = _get(catcher, "/api/messages")
    items: list[dict[str, Any]] = json.loads(body)
    return items


def _send(catcher: MailCatcher, subject: str, to: str = "Ana <ana@example.org>") -> None:
    message = EmailMessage()
    message["From"] = "notify@tacso.example"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("Radionica počinje u 10 sati.\n")
    with smtplib.SMTP("127.0.0.1", catcher.smtp_port, timeout=10) as client:
        client.send_message(message)


def test_stores_mail_as_eml_and_lists_it(catcher: MailCatcher, tmp_path: Path) -> None:
    _send(catcher, "Poziv: <Radionica> & sastanak")

    [stored] = wait_until(lambda: list(tmp_path.glob("*.eml")), timeout=10)
    assert stored.name.endswith("-ana@example.org.eml")
    assert stored.read_bytes().startswith(b"X-Mailcatcher-Envelope-From: notify@tacso.example\r\n")

    [item] = _api(catcher)
    assert item["file"] == stored.name
    assert item["subject"] == "Poziv: <Radionica> & sastanak"
    assert item["to"] == "ana@example.org"
    assert item["date"].endswith("Z")

    content_type, page = _get(catcher, "/")
    assert content_type.startswith("text/html")
    assert b"Poziv: &lt;Radionica&gt; &amp; sastanak" in page
    assert f'href="/messages/{stored.name}"'.encode() in page

    _content_type, raw = _get(catcher, f"/messages/{stored.name}")
    assert raw == stored.read_bytes()


def test_lists_newest_first_and_refuses_paths_outside_the_folder(catcher: MailCatcher) -> None:
    for subject in ("first", "second", "third"):
        _send(catcher, subject)

    assert [item["subject"] for item in _api(catcher)] == ["third", "second", "first"]
    for path in ("/messages/..%2F..%2Fetc%2Fpasswd", "/messages/nope.eml", "/elsewhere"):
        with pytest.raises(urllib.error.HTTPError) as caught:
            _get(catcher, path)
        assert caught.value.code == 404
        caught.value.close()


def test_main_runs_until_sigterm(tmp_path: Path) -> None:
    catcher = MailCatcher(MailCatcherConfig(smtp_port=0, http_port=0, mail_dir=tmp_path))
    # Borrow two free ports by starting and stopping an in-process catcher on port 0.
    catcher.start()
    smtp_port, http_port = catcher.smtp_port, catcher.http_port
    catcher.stop()
    env = {
        **os.environ,
        "MAILCATCHER_HOST": "127.0.0.1",
        "MAILCATCHER_PORT": str(smtp_port),
        "MAILCATCHER_HTTP_PORT": str(http_port),
        "MAIL_DIR": str(tmp_path / "mail"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "tacso_devtools.mailcatcher"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        assert f"mail catcher: SMTP on 127.0.0.1:{smtp_port}" in banner
        assert f"browse http://127.0.0.1:{http_port}/" in banner
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
