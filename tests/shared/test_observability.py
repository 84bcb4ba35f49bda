"""What every process shows an operator: correlation ids, JSON log lines, metrics, API docs."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, request
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from tacso_shared import correlation, logs
from tacso_shared.apidocs import CONTENT_SECURITY_POLICY
from tacso_shared.config import CommonSettings, ConfigError
from tacso_shared.envelope import Envelope
from tacso_shared.metrics import OutboxCollector
from tacso_shared.outbox import OutboxRelay, outbox_table
from tacso_shared.web import Blueprint, configure_app


def settings(**env: str) -> CommonSettings:
    return CommonSettings.load("things", 5000, {"ADMIN_API_KEY": "key", **env})


@pytest.fixture
def app() -> Flask:
    app = Flask(__name__)
    api = configure_app(app, "TACSO things", "1", settings())
    blp = Blueprint("things", __name__, url_prefix="/api")

    @blp.route("/things/<thing_id>")  # type: ignore[untyped-decorator]
    def thing(thing_id: str) -> Any:
        """One thing."""
        return {"id": thing_id, "seen": request.headers.get(correlation.HEADER)}

    api.register_blueprint(blp)
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the process logs, as the JSON lines of ``LOG_FORMAT=json``."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.setup_logging("things", "INFO", "json", role="api")
    stream = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


class TestTheCorrelationId:
    def test_a_request_without_one_gets_a_fresh_id_in_the_response(
        self, client: FlaskClient
    ) -> None:
        first = client.get("/api/things/1")
        second = client.get("/api/things/1")
        assert first.headers[correlation.HEADER] != second.headers[correlation.HEADER]
        assert len(first.headers[correlation.HEADER]) == 36

    def test_the_view_sees_the_generated_id_as_if_the_client_had_sent_it(
        self, client: FlaskClient
    ) -> None:
        response = client.get("/api/things/1")
        assert response.get_json()["seen"] == response.headers[correlation.HEADER]

    def test_a_valid_client_id_is_kept_and_echoed(self, client: FlaskClient) -> None:
        response = client.get("/api/things/1", headers={correlation.HEADER: "req-42.a:b"})
        assert response.headers[correlation.HEADER] == "req-42.a:b"
        assert response.get_json()["seen"] == "req-42.a:b"

    @pytest.mark.parametrize("forged", ["a b", "x" * 129, "id\u00e9", "<script>"])
    def test_an_unusable_client_id_is_replaced_not_refused(
        self, client: FlaskClient, forged: str
    ) -> None:
        response = client.get("/api/things/1", headers={correlation.HEADER: forged})
        assert response.status_code == 200
        assert response.headers[correlation.HEADER] != forged

    def test_a_refused_request_still_has_its_id(self, client: FlaskClient) -> None:
        response = client.get("/api/things/1?q=" + "a" * 5000)
        assert response.status_code == 414
        assert correlation.HEADER in response.headers

    def test_no_id_outlives_its_request(self, client: FlaskClient) -> None:
        client.get("/api/things/1")
        assert correlation.current() is None


class TestLogLines:
    def test_a_request_is_one_json_line_with_its_correlation_id(
        self, client: FlaskClient, log_lines: io.StringIO
    ) -> None:
        response = client.get("/api/things/7", headers={correlation.HEADER: "trace-me"})
        lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
        [line] = [x for x in lines if x.get("logger") == "tacso.http"]
        assert response.status_code == 200
        assert line["correlation_id"] == "trace-me"
        assert (line["service"], line["role"], line["level"]) == ("things", "api", "INFO")
        assert (line["route"], line["status"]) == ("/api/things/<thing_id>", 200)
        assert line["message"].startswith("GET /api/things/7 200")
        assert datetime.fromisoformat(line["time"]).tzinfo is not None

    def test_health_checks_and_scrapes_are_not_logged(
        self, client: FlaskClient, log_lines: io.StringIO
    ) -> None:
        client.get("/metrics")
        assert "tacso.http" not in log_lines.getvalue()

    def test_a_line_outside_any_request_has_no_correlation_id(self, log_lines: io.StringIO) -> None:
        logging.getLogger("tacso.test").warning("Tuzla \u0161kola %s", "closed")
        line = json.loads(log_lines.getvalue())
        assert (line["message"], line["correlation_id"]) == ("Tuzla \u0161kola closed", None)

    def test_a_line_in_a_bound_block_carries_its_id(self, log_lines: io.StringIO) -> None:
        with correlation.bound("abc"):
            logging.getLogger("tacso.test").info("handling")
        assert json.loads(log_lines.getvalue())["correlation_id"] == "abc"

    def test_text_format_is_one_readable_line(self) -> None:
        root = logging.getLogger()
        saved = list(root.handlers)
        logs.setup_logging("things", "INFO", "text", role="relay")
        stream = io.StringIO()
        handler = root.handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        try:
            with correlation.bound("abc"):
                logging.getLogger("tacso.test").info("hello")
            logging.getLogger("tacso.test").info("no id")
        finally:
            root.handlers[:] = saved
        assert " things relay " in stream.getvalue()
        lines = stream.getvalue().splitlines()
        assert lines[0].endswith("tacso.test: hello [cid=abc]")
        assert lines[1].endswith("tacso.test: no id"), "no empty [cid=...] without one"

    def test_log_format_must_be_json_or_text(self) -> None:
        assert settings(LOG_FORMAT="TEXT").log_format == "text"
        with pytest.raises(ConfigError, match="LOG_FORMAT"):
            settings(LOG_FORMAT="xml")


class TestHttpMetrics:
    def test_requests_are_counted_by_url_rule_never_by_url(self, client: FlaskClient) -> None:
        client.get("/api/things/abc-1")
        client.get("/api/things/abc-2")
        client.get("/nowhere/at/all")
        text = client.get("/metrics").get_data(as_text=True)
        routes = {
            labels["route"]
            for labels, _ in samples(text, "tacso_http_requests_total")
            if labels["service"] == "things"
        }
        assert "/api/things/<thing_id>" in routes
        assert "unmatched" in routes
        assert not any("abc" in route for route in routes)

    def test_latency_is_a_histogram_in_seconds(self, client: FlaskClient) -> None:
        client.get("/api/things/1")
        text = client.get("/metrics").get_data(as_text=True)
        counts = samples(text, "tacso_http_request_duration_seconds_count")
        assert any(labels["route"] == "/api/things/<thing_id>" for labels, _ in counts)

    def test_gunicorn_workers_share_one_multiprocess_directory(self, tmp_path: Any) -> None:
        # In a fresh interpreter: multiprocess mode is chosen once per process.
        script = textwrap.dedent(
            f"""
            import os
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = {str(tmp_path)!r}
            from tacso_shared import metrics
            path = metrics.prepare_multiprocess("things")
            assert os.path.dirname(path) == {str(tmp_path)!r}
            pid = os.fork()
            if pid == 0:  # a gunicorn worker
                metrics.MESSAGES_HANDLED.labels("q.child").inc(3)
                os._exit(0)
            os.waitpid(pid, 0)
            metrics.mark_worker_dead(pid)
            metrics.MESSAGES_HANDLED.labels("q.parent").inc()
            body, _ = metrics.exposition()
            print(body.decode())
            """
        )
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout
        handled = {
            labels["queue"]: value for labels, value in samples(out, "tacso_messages_handled_total")
        }
        assert handled == {"q.child": 3.0, "q.parent": 1.0}

    def test_the_directory_goes_when_the_master_exits_not_when_a_worker_does(self) -> None:
        script = textwrap.dedent(
            """
            import os, sys
            from tacso_shared import metrics
            path = metrics.prepare_multiprocess("things")
            metrics.remove_at_exit(path)
            print(path)
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:  # a gunicorn worker leaves with sys.exit, running exit handlers
                sys.exit(0)
            os.waitpid(pid, 0)
            assert os.path.isdir(path), "a worker's exit removed the directory"
            """
        )
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        path = Path(result.stdout.strip())
        assert path.name.startswith("tacso-things-metrics-")
        assert not path.exists()


class TestOutboxMetrics:
    def test_pending_count_and_age_of_the_oldest(self, tmp_path: Any) -> None:
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'o.sqlite3'}")
        metadata = sa.MetaData()
        table = outbox_table(metadata)
        metadata.create_all(engine)
        relay = OutboxRelay(engine, table, "memory://")
        assert relay.stats() == (0, None)
        with engine.begin() as conn:
            for age, published in ((90, None), (30, None), (500, datetime.now(UTC))):
                envelope = Envelope(type="t", source="s", data={})
                conn.execute(
                    table.insert().values(
                        id=envelope.id,
                        message_type="t",
                        routing_key="r",
                        body="{}",
                        created_at=datetime.now(UTC) - timedelta(seconds=age),
                        published_at=published,
                        attempts=0,
                    )
                )
        pending, oldest = relay.stats()
        assert pending == 2
        assert oldest is not None and 89 < oldest < 120
        families = {m.name: m for m in OutboxCollector("events", relay.stats).collect()}
        [age_sample] = families["tacso_outbox_oldest_pending_age_seconds"].samples
        assert age_sample.labels == {"service": "events"}

    def test_a_database_away_costs_the_gauges_not_the_scrape(self) -> None:
        def away() -> tuple[int, float | None]:
            raise sa.exc.OperationalError("SELECT", {}, Exception("gone"))

        assert list(OutboxCollector("events", away).collect()) == []


class TestApiDocs:
    def test_the_page_loads_only_this_apis_own_files(self, client: FlaskClient) -> None:
        response = client.get("/docs")
        page = response.get_data(as_text=True)
        assert response.status_code == 200
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert "http" not in page
        assert "<script>" not in page  # no inline script: the CSP allows none
        for asset in ("swagger-ui.css", "swagger-ui-bundle.js", "start.js"):
            assert f"/docs/assets/{asset}" in page
            assert client.get(f"/docs/assets/{asset}").status_code == 200

    def test_only_the_bundles_files_are_served(self, client: FlaskClient) -> None:
        assert client.get("/docs/assets/index.html").status_code == 404
        assert client.get("/docs/assets/..%2F__init__.py").status_code == 404

    def test_the_docs_are_not_an_operation_of_the_api(self, client: FlaskClient) -> None:
        paths = client.get("/openapi.json").get_json()["paths"]
        assert list(paths) == ["/api/things/{thing_id}"]
