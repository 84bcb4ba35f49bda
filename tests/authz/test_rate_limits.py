"""Specification of rate limits: 429 with Retry-After, per address or per account, shared."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask

from support.stack import free_port
from support.waiting import wait_until
from support.world import ADMIN_KEY_CALLER, World, build_world
from tacso_shared.identity import COUNTRY_EDITOR

TOKEN = "/api/v1/auth/token"
BAD_GRANT = {"grant_type": "password", "username": "x@example.org", "password": "wrong"}


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[World]:
    """The three services with small limits (the world's own tokens are asked for first)."""
    with build_world(
        tmp_path,
        RATE_LIMIT_CREDENTIALS="10/minute",
        RATE_LIMIT_PUBLIC="5/minute",
        RATE_LIMIT_WRITES="2/minute",
    ) as world:
        yield world


def registry_app(world: World) -> Flask:
    app: Flask = world.clients["registry"].application
    return app


class TestInProcess:
    def test_the_token_endpoint_answers_429_with_retry_after_past_the_limit(
        self, tmp_path: Path
    ) -> None:
        with build_world(tmp_path, RATE_LIMIT_CREDENTIALS="10/minute") as world:
            # build_world asked for 4 tokens already (one per role).
            registry = world.clients["registry"]
            statuses = [registry.post(TOKEN, data=BAD_GRANT).status_code for _ in range(6)]
            refused = registry.post(TOKEN, data=BAD_GRANT)

        assert statuses == [400] * 6
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60

    def test_setting_a_password_is_limited_too(self, limited: World) -> None:
        registry = limited.clients["registry"]
        body = {"token": "x.y.z", "password": "a long enough password"}

        statuses = [
            registry.post("/api/v1/users/password", json=body).status_code for _ in range(7)
        ]

        # One budget per address for every credential endpoint: 4 tokens were asked for already.
        assert statuses == [400] * 6 + [429]

    def test_anonymous_public_reads_are_limited_by_address_callers_are_not(
        self, limited: World
    ) -> None:
        events = limited.clients["events"]

        anonymous = [events.get("/api/v1/events").status_code for _ in range(6)]
        known = events.get("/api/v1/events", headers=limited.headers(COUNTRY_EDITOR))

        assert anonymous == [200] * 5 + [429]
        assert known.status_code == 200

    def test_writes_are_limited_per_account_but_not_for_the_admin_key(self, limited: World) -> None:
        registry = limited.clients["registry"]

        def register(caller: str) -> int:
            body = {
                "name": "CSO",
                "kind": "cso",
                "country": "BA",
                "email": f"{uuid.uuid4().hex[:10]}@example.org",
                "language": "bs",
            }
            response = registry.post(
                "/api/v1/organisations", json=body, headers=limited.headers(caller)
            )
            return response.status_code

        editor = [register(COUNTRY_EDITOR) for _ in range(3)]
        admin_key = [register(ADMIN_KEY_CALLER) for _ in range(3)]

        assert editor == [201, 201, 429]
        assert admin_key == [201] * 3

    def test_the_openapi_document_shows_the_429(self, limited: World) -> None:
        paths = limited.clients["registry"].get("/openapi.json").get_json()["paths"]

        assert "429" in paths[TOKEN]["post"]["responses"]


@pytest.mark.e2e
def test_two_gunicorn_workers_share_the_limit_through_redis(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "VAR_DIR": str(tmp_path),
        "ADMIN_API_KEY": "test-admin-key",
        "REGISTRY_PORT": str(port),
        "BIND_HOST": "127.0.0.1",
        "WEB_CONCURRENCY": "2",
        "RATE_LIMIT_STORAGE_URL": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
        "RATE_LIMIT_NAMESPACE": f"test-{uuid.uuid4()}",
        "RATE_LIMIT_CREDENTIALS": "10/minute",
        "RATE_LIMIT_SIGNUP": "3/hour",
    }
    log = open(tmp_path / "registry.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "tacso_registry", "serve", "--migrate"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return requests.get(f"{base}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(healthy, timeout=60, message="registry did not become healthy")
        responses = []
        for _ in range(16):
            # A new connection each time, so that both workers take requests.
            with requests.Session() as session:
                responses.append(session.post(f"{base}{TOKEN}", data=BAD_GRANT, timeout=10))
        signups = []
        for i in range(6):
            with requests.Session() as session:
                body = {
                    "name": "Udruženje",
                    "kind": "cso",
                    "country": "BA",
                    "email": f"signup-{i}-{uuid.uuid4().hex[:6]}@example.org",
                    "language": "bs",
                    "consent_text_version": "signup-2026-11",
                    "consent": True,
                }
                signups.append(session.post(f"{base}/api/v1/signups", json=body, timeout=10))
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()

    statuses = [r.status_code for r in responses]
    assert statuses.count(400) == 10, statuses
    assert statuses.count(429) == 6, statuses
    assert all(int(r.headers["Retry-After"]) >= 1 for r in responses if r.status_code == 429)
    # Sign-ups have their own budget per address, shared by both workers too.
    assert [r.status_code for r in signups] == [202] * 3 + [429] * 3
    assert all(1 <= int(r.headers["Retry-After"]) <= 3600 for r in signups[3:])
