"""Tests for the test helpers: the recording SMTP server, the TCP proxy and wait_until."""

from __future__ import annotations

import contextlib
import smtplib
import socket
import threading
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from support.smtp import RecordingSMTPServer
from support.tcp_proxy import TcpProxy
from support.waiting import wait_until


@pytest.fixture
def smtp_server() -> Iterator[RecordingSMTPServer]:
    with RecordingSMTPServer() as server:
        yield server


def _message(to: str = "alice@example.org", subject: str = "Poziv na događaj") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "notify@tacso.example"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("Dobrodošli na radionicu.\n")
    return message


def _send(server: RecordingSMTPServer, message: EmailMessage, to: list[str] | None = None) -> None:
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        client.send_message(message, to_addrs=to)


# -- RecordingSMTPServer ---------------------------------------------------------------------


def test_records_a_message_and_parses_its_headers(smtp_server: RecordingSMTPServer) -> None:
    assert smtp_server.port != 0
    _send(smtp_server, _message(), to=["alice@example.org", "bob@example.org"])

    [mail] = smtp_server.wait_for(1, timeout=5)

    assert mail.mail_from == "notify@tacso.example"
    assert mail.rcpt_tos == ("alice@example.org", "bob@example.org")
    assert mail.header("Subject") == "Poziv na događaj"
    assert mail.subject == "Poziv na događaj"
    assert mail.header("X-Not-There") is None
    assert mail.message["To"] == "alice@example.org"
    assert mail.body_text() == "Dobrodošli na radionicu.\n"
    assert b"Subject:" in mail.data


def test_wait_for_with_predicate_and_clear(smtp_server: RecordingSMTPServer) -> None:
    for to in ("a@example.org", "b@example.org", "a@example.org"):
        _send(smtp_server, _message(to=to))

    to_a = smtp_server.wait_for(2, timeout=5, predicate=lambda m: m.rcpt_tos == ("a@example.org",))

    assert len(to_a) == 2
    assert len(smtp_server.messages) == 3
    smtp_server.clear()
    assert smtp_server.messages == []


def test_wait_for_wakes_up_when_mail_arrives_later(smtp_server: RecordingSMTPServer) -> None:
    sender = threading.Thread(target=_send, args=(smtp_server, _message()))
    sender.start()
    try:
        assert len(smtp_server.wait_for(1, timeout=5)) == 1
    finally:
        sender.join()


def test_wait_for_timeout_says_how_many_arrived(smtp_server: RecordingSMTPServer) -> None:
    _send(smtp_server, _message(subject="only one"))

    with pytest.raises(AssertionError, match=r"at least 2 message\(s\).*got 1 of 1") as caught:
        smtp_server.wait_for(2, timeout=0.2)
    assert "only one" in str(caught.value)


def test_set_failure_refuses_recipients_until_cleared(smtp_server: RecordingSMTPServer) -> None:
    smtp_server.set_failure(451, "4.3.0 try again later")

    with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
        _send(smtp_server, _message())
    assert caught.value.recipients["alice@example.org"][0] == 451
    assert smtp_server.messages == []
    [rejection] = smtp_server.rejections
    assert (rejection.stage, rejection.address, rejection.code) == (
        "RCPT",
        "alice@example.org",
        451,
    )

    smtp_server.set_failure(None)
    _send(smtp_server, _message())
    assert len(smtp_server.wait_for(1, timeout=5)) == 1


def test_set_failure_at_data_stage(smtp_server: RecordingSMTPServer) -> None:
    smtp_server.set_failure(554, "5.6.0 content rejected", stage="DATA")

    with pytest.raises(smtplib.SMTPDataError) as caught:
        _send(smtp_server, _message())
    assert caught.value.smtp_code == 554
    assert smtp_server.messages == []


def test_fail_recipients_refuses_only_those(smtp_server: RecordingSMTPServer) -> None:
    smtp_server.fail_recipients({"Bad@Example.org": (550, "5.1.1 no such user")})

    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
        refused = client.send_message(_message(), to_addrs=["good@example.org", "bad@example.org"])

    assert refused == {"bad@example.org": (550, b"5.1.1 no such user")}
    [mail] = smtp_server.wait_for(1, timeout=5)
    assert mail.rcpt_tos == ("good@example.org",)

    smtp_server.fail_recipients({})
    _send(smtp_server, _message(), to=["bad@example.org"])
    assert len(smtp_server.wait_for(2, timeout=5)) == 2


def test_stop_frees_the_port_and_start_reuses_it(smtp_server: RecordingSMTPServer) -> None:
    port = smtp_server.port
    # A client connected across the stop must be dropped, not left hanging.
    client = smtplib.SMTP(smtp_server.host, port, timeout=10)
    try:
        client.ehlo()
        smtp_server.stop()

        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((smtp_server.host, port), timeout=2).close()
        with pytest.raises((smtplib.SMTPServerDisconnected, OSError)):
            client.noop()
    finally:
        client.close()

    smtp_server.start()
    assert smtp_server.port == port
    _send(smtp_server, _message())
    assert len(smtp_server.wait_for(1, timeout=5)) == 1

    smtp_server.restart()
    assert smtp_server.port == port
    _send(smtp_server, _message())
    assert len(smtp_server.wait_for(2, timeout=5)) == 2


def test_accepts_large_messages(smtp_server: RecordingSMTPServer) -> None:
    message = _message()
    message.add_attachment(b"\0" * (5 * 1024 * 1024), maintype="application", subtype="pdf")

    _send(smtp_server, message)

    [mail] = smtp_server.wait_for(1, timeout=10)
    assert len(mail.data) > 5 * 1024 * 1024


# -- TcpProxy --------------------------------------------------------------------------------


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A loopback server that echoes every byte back on each connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    stopping = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        # The proxy resets upstream connections when it is disabled or stopped.
        with conn, contextlib.suppress(ConnectionError):
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept() -> None:
        while not stopping.is_set():
            try:
                conn, _addr = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(5)


def _echo(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = conn.recv(4096)
            if not chunk:
                break
            received += chunk
        return received


def _is_cut(conn: socket.socket) -> bool:
    """Whether the proxy closed or reset this connection (reading gives EOF or an error)."""
    try:
        conn.sendall(b"ping")
        return conn.recv(4096) == b""
    except TimeoutError:
        return False  # still open: nobody closed it
    except OSError:
        return True


def _new_connection_is_cut(port: int) -> bool:
    """Whether a new connection fails, or is closed or reset right after it is accepted."""
    try:
        conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        return True  # the reset can win the race with connect() returning
    with conn:
        return _is_cut(conn)


def test_proxy_forwards_bytes(echo_port: int) -> None:
    with TcpProxy("127.0.0.1", echo_port) as proxy:
        assert proxy.port not in (0, echo_port)
        payload = bytes(range(256)) * 1000
        assert _echo(proxy.port, payload) == payload
        assert proxy.total_connections == 1


def test_proxy_disable_cuts_open_and_new_connections(echo_port: int) -> None:
    with TcpProxy("127.0.0.1", echo_port) as proxy:
        conn = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        with conn:
            conn.sendall(b"hello")
            assert conn.recv(16) == b"hello"
            wait_until(lambda: proxy.active_connections == 1, timeout=5)

            proxy.disable()

            assert proxy.active_connections == 0
            assert _is_cut(conn)

        assert _new_connection_is_cut(proxy.port)

        proxy.enable()
        assert _echo(proxy.port, b"again") == b"again"


def test_proxy_stop_closes_the_listener(echo_port: int) -> None:
    proxy = TcpProxy("127.0.0.1", echo_port)
    proxy.start()
    port = proxy.port
    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    with conn:
        conn.sendall(b"x")
        assert conn.recv(1) == b"x"
        proxy.stop()
        assert _is_cut(conn)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert not any(t.name.startswith("tcp-proxy") for t in threading.enumerate())


def test_proxy_only_targets_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        TcpProxy("10.0.0.1", 5672)


# -- wait_until ------------------------------------------------------------------------------


def test_wait_until_returns_the_first_truthy_value() -> None:
    calls: list[int] = []

    def third_time() -> list[int] | None:
        calls.append(1)
        return calls if len(calls) >= 3 else None

    assert wait_until(third_time, timeout=5, interval=0.001) == [1, 1, 1]


def test_wait_until_treats_exceptions_as_not_yet() -> None:
    failures = [KeyError("a"), KeyError("b")]

    def flaky() -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    assert wait_until(flaky, timeout=5, interval=0.001) == "done"


def test_wait_until_timeout_reports_the_last_value() -> None:
    with pytest.raises(AssertionError, match=r"the queue to drain.*last value 0"):
        wait_until(lambda: 0, timeout=0.1, message="the queue to drain")


def test_wait_until_timeout_reports_the_last_exception() -> None:
    def broken() -> bool:
        raise ConnectionError("broker down")

    with pytest.raises(AssertionError, match=r"ConnectionError: broker down"):
        wait_until(broken, timeout=0.1)
