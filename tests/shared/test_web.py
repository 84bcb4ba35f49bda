"""What every API does the same way: how a request is read, limits, and JSON errors."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask.views import MethodView
from marshmallow import Schema, fields
from sqlalchemy import create_engine

from tacso_shared.auth import admin_required
from tacso_shared.config import CommonSettings, ConfigError
from tacso_shared.web import (
    MAX_JSON_DEPTH,
    AsciiInteger,
    Blueprint,
    add_health,
    configure_app,
    parse_json_document,
)

KEY = "key"
ADMIN = {"Authorization": f"Bearer {KEY}"}
LIMIT = 64 * 1024


class ThingSchema(Schema):
    name = fields.String(required=True)
    size = fields.Integer()
    tags = fields.List(fields.Raw())


class PageSchema(Schema):
    page = AsciiInteger(load_default=1)


def settings(**env: str) -> CommonSettings:
    return CommonSettings.load(
        "test", 5000, {"ADMIN_API_KEY": KEY, "MAX_CONTENT_LENGTH": str(LIMIT), **env}
    )


class ExplodingStream(io.RawIOBase):
    """A request body that fails the test if anything reads it."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise AssertionError("the body was read")


@pytest.fixture
def app() -> Flask:
    app = Flask(__name__)
    api = configure_app(app, "test", "1", settings())
    blp = Blueprint("things", __name__, url_prefix="/api")

    @blp.route("/things")
    class Things(MethodView):
        @blp.arguments(PageSchema, location="query")
        def get(self, args: dict[str, Any]) -> Any:
            return {"page": args["page"]}

        @admin_required
        @blp.arguments(ThingSchema)
        def post(self, data: dict[str, Any]) -> Any:
            return data

    api.register_blueprint(blp)
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def post_raw(client: FlaskClient, body: str | bytes, **headers: str) -> Any:
    return client.post(
        "/api/things",
        data=body,
        headers={"Content-Type": "application/json", **ADMIN, **headers},
    )


class TestTheUrlAndHeaders:
    @pytest.mark.parametrize("url", ["/api/things%00", "/api/things?page=1%00"])
    def test_a_nul_in_the_url_is_a_400(self, client: FlaskClient, url: str) -> None:
        response = client.get(url)
        assert response.status_code == 400
        assert "NUL" in response.get_json()["message"]

    def test_a_url_too_long_is_a_json_414(self, client: FlaskClient) -> None:
        response = client.get("/api/things?q=" + "a" * 5000)
        assert response.status_code == 414
        assert response.get_json()["code"] == 414

    def test_a_header_too_long_is_a_json_431(self, client: FlaskClient) -> None:
        response = client.get("/api/things", headers={"X-Big": "a" * 9000})
        assert response.status_code == 431
        assert "X-Big" in response.get_json()["message"]

    def test_too_many_headers_is_a_json_431(self, client: FlaskClient) -> None:
        response = client.get("/api/things", headers={f"X-H{i}": "1" for i in range(120)})
        assert response.status_code == 431

    def test_a_405_says_which_methods_are_allowed(self, client: FlaskClient) -> None:
        response = client.delete("/api/things")
        assert response.status_code == 405
        assert response.get_json()["code"] == 405
        assert {"GET", "POST"} <= set(response.headers["Allow"].split(", "))

    @pytest.mark.parametrize("page", ["١", "²", "1_0", " 1 0"])
    def test_page_numbers_are_ascii_digits(self, client: FlaskClient, page: str) -> None:
        response = client.get("/api/things", query_string={"page": page})
        assert response.status_code == 422
        assert "page" in response.get_json()["errors"]["query"]

    def test_an_ascii_page_number_passes(self, client: FlaskClient) -> None:
        assert client.get("/api/things?page=12").get_json() == {"page": 12}


class TestBodySize:
    def test_a_declared_body_over_the_limit_is_a_413_before_the_key_is_checked(
        self, client: FlaskClient
    ) -> None:
        response = client.post(
            "/api/things",
            headers={"Content-Type": "application/json"},
            environ_overrides={
                "wsgi.input": ExplodingStream(),
                "CONTENT_LENGTH": str(105 * 1024 * 1024),
            },
        )
        assert response.status_code == 413
        assert response.get_json()["code"] == 413

    def test_a_route_that_takes_no_body_never_reads_one(self, client: FlaskClient) -> None:
        response = client.get(
            "/api/things",
            headers={"Content-Type": "application/json"},
            environ_overrides={"wsgi.input": ExplodingStream(), "CONTENT_LENGTH": "1000"},
        )
        assert response.status_code == 200

    def test_a_body_is_not_read_before_the_key_is_checked(self, client: FlaskClient) -> None:
        response = client.post(
            "/api/things",
            headers={"Content-Type": "application/json"},
            environ_overrides={"wsgi.input": ExplodingStream(), "CONTENT_LENGTH": "1000"},
        )
        assert response.status_code == 401

    def test_a_body_within_the_limit_passes(self, client: FlaskClient) -> None:
        response = post_raw(client, json.dumps({"name": "a" * (LIMIT - 100)}))
        assert response.status_code == 200

    def test_the_limit_is_a_setting(self) -> None:
        assert settings(MAX_CONTENT_LENGTH="2048").max_content_length == 2048
        with pytest.raises(ConfigError, match="MAX_CONTENT_LENGTH"):
            settings(MAX_CONTENT_LENGTH="0")


class TestJsonBodies:
    def test_a_nul_in_a_json_body_is_a_422_naming_the_field(self, client: FlaskClient) -> None:
        response = client.post("/api/things", json={"name": "bad\u0000name"}, headers=ADMIN)
        assert response.status_code == 422
        assert "NUL" in response.get_json()["errors"]["json"]["name"][0]

    def test_a_deep_body_with_a_nul_and_no_key_is_a_401(self, client: FlaskClient) -> None:
        body = "[" * 10_000 + '"\\u0000"' + "]" * 10_000
        response = client.post(
            "/api/things", data=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 401

    @pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 10_000, 30_000])
    def test_a_body_nested_too_deep_is_a_400(self, client: FlaskClient, depth: int) -> None:
        body = '{"name": "x", "tags": ' + "[" * depth + "]" * depth + "}"
        response = post_raw(client, body)
        assert response.status_code == 400
        assert "nested" in response.get_json()["message"]

    def test_nesting_up_to_the_limit_passes(self, client: FlaskClient) -> None:
        depth = MAX_JSON_DEPTH - 1
        body = '{"name": "x", "tags": ' + "[" * depth + "]" * depth + "}"
        assert post_raw(client, body).status_code == 200

    def test_a_lone_surrogate_is_a_422_naming_the_field(self, client: FlaskClient) -> None:
        response = post_raw(client, '{"name": "a\\udfff"}')
        assert response.status_code == 422
        assert "name" in response.get_json()["errors"]["json"]

    def test_a_surrogate_pair_is_an_ordinary_character(self, client: FlaskClient) -> None:
        response = post_raw(client, '{"name": "\\ud83d\\ude00"}')
        assert response.get_json() == {"name": "\U0001f600"}

    @pytest.mark.parametrize("number", ["1" * 5000, "1e999", "-1" + "0" * 200, "1." + "0" * 500])
    def test_an_outsized_number_is_a_422(self, client: FlaskClient, number: str) -> None:
        response = post_raw(client, f'{{"name": "x", "size": {number}}}')
        assert response.status_code == 422, response.get_json()

    @pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
    def test_nan_and_infinity_are_a_400(self, client: FlaskClient, constant: str) -> None:
        response = post_raw(client, f'{{"name": "x", "size": {constant}}}')
        assert response.status_code == 400
        assert constant.lstrip("-") in response.get_json()["message"]

    def test_a_repeated_key_is_a_400(self, client: FlaskClient) -> None:
        response = post_raw(client, '{"name": "x", "name": "y"}')
        assert response.status_code == 400
        assert "repeats" in response.get_json()["message"]

    @pytest.mark.parametrize("body", [b'{"name": ', b'{"name": "\xff"}'])
    def test_malformed_json_is_a_400(self, client: FlaskClient, body: bytes) -> None:
        response = post_raw(client, body)
        assert response.status_code == 400
        assert response.get_json()["errors"]["json"]

    @pytest.mark.parametrize(
        ("content_type", "body"),
        [("text/plain", '{"name": "x"}'), ("application/x-www-form-urlencoded", "name=x")],
    )
    def test_a_body_that_is_not_json_is_a_415(
        self, client: FlaskClient, content_type: str, body: str
    ) -> None:
        response = client.post(
            "/api/things", data=body, headers={"Content-Type": content_type, **ADMIN}
        )
        assert response.status_code == 415
        assert response.get_json()["code"] == 415

    def test_ordinary_bodies_pass(self, client: FlaskClient) -> None:
        response = client.post("/api/things", json={"name": "Žene", "size": 3}, headers=ADMIN)
        assert response.get_json() == {"name": "Žene", "size": 3}

    def test_request_get_json_reads_strictly_too(self, app: Flask) -> None:
        with app.test_request_context(
            "/", method="POST", data='{"a": NaN}', content_type="application/json"
        ):
            from flask import request

            assert request.get_json(silent=True) is None

    def test_the_parser_refuses_without_recursing(self) -> None:
        with pytest.raises(ValueError, match="nested"):
            parse_json_document("[" * 100_000 + "]" * 100_000)


class TestHealth:
    def test_a_database_that_does_not_answer_is_a_503_without_its_error_text(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        app = Flask(__name__)
        configure_app(app, "test", "1", settings())
        engine = create_engine("postgresql+psycopg://tacso@127.0.0.1:1/db")
        add_health(app, engine)
        with caplog.at_level(logging.ERROR):
            response = app.test_client().get("/healthz")
        assert response.status_code == 503
        assert "refused" not in response.get_data(as_text=True)
        assert response.get_json()["status"] == "unavailable"
        assert "refused" in caplog.text


class TestSettings:
    def test_an_unset_admin_key_turns_the_admin_key_off(self) -> None:
        loaded = CommonSettings.load("test", 5000, {"ADMIN_API_KEY": ""})
        assert loaded.admin_api_key is None
        assert loaded.service_credential is None

    def test_web_settings_are_read_in_one_place(self) -> None:
        loaded = settings(BIND_HOST="127.0.0.1", WEB_THREADS="8", ACCESS_LOG="-", LOG_LEVEL="debug")
        assert (loaded.bind_host, loaded.web_threads, loaded.access_log, loaded.log_level) == (
            "127.0.0.1",
            8,
            "-",
            "DEBUG",
        )


class TestSecurityHeaders:
    @pytest.fixture
    def headed(self) -> FlaskClient:
        app = Flask(__name__)
        configure_app(app, "t", "1", settings())
        app.add_url_rule("/thing", "thing", lambda: {"ok": True})
        return app.test_client()

    def test_every_response_forbids_framing_sniffing_and_referrers(
        self, headed: FlaskClient
    ) -> None:
        for response in (headed.get("/thing"), headed.get("/missing")):
            assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Referrer-Policy"] == "no-referrer"
            assert "Strict-Transport-Security" not in response.headers

    def test_hsts_only_over_tls(self, headed: FlaskClient) -> None:
        response = headed.get("/thing", base_url="https://api.example.org")

        assert response.headers["Strict-Transport-Security"].startswith("max-age=")

    def test_an_answer_to_a_credential_is_not_cached(self, headed: FlaskClient) -> None:
        response = headed.get("/thing", headers={"Authorization": "Bearer x"})

        assert response.headers["Cache-Control"] == "no-store"
