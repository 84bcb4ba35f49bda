"""What every API does the same way: JSON errors, and no NUL characters getting to the database."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from tacso_shared.web import configure_app


@pytest.fixture
def app() -> Flask:
    app = Flask(__name__)
    configure_app(app, "test", "1", "key")

    @app.route("/things/<thing>", methods=["GET", "POST"])
    def thing(thing: str) -> Any:
        return {"thing": thing}

    return app


@pytest.mark.parametrize("url", ["/things/a%00b", "/things/a?after=x%00"])
def test_a_nul_in_the_url_is_a_400(app: Flask, url: str) -> None:
    response = app.test_client().get(url)
    assert response.status_code == 400
    assert "NUL" in response.get_json()["message"]


def test_a_nul_in_a_json_body_is_a_422(app: Flask) -> None:
    response = app.test_client().post("/things/a", json={"name": "bad\u0000name"})
    assert response.status_code == 422
    assert "NUL" in response.get_json()["errors"]["json"]["name"][0]


def test_ordinary_requests_pass(app: Flask) -> None:
    assert app.test_client().post("/things/ž", json={"name": "Žene"}).get_json() == {"thing": "ž"}
