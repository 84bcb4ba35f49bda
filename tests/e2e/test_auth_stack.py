"""Tokens in the running stack: verified locally while registry is down, a key rotation that fails
no request, and the audit log naming the actor of each write.

The module has a stack of its own (SQLite, then PostgreSQL): it stops and starts registry.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from typing import Any

import requests

from support.stack import Stack


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def registry_cli(stack: Stack, *args: str) -> str:
    """Run ``tacso-registry ARGS`` as an operator would, with the stack's settings."""
    done = subprocess.run(
        [sys.executable, "-m", "tacso_registry", *args],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def draft(stack: Stack) -> str:
    """A BA draft of the seeded Resource Centre (only callers with rights may see it)."""
    vesta = stack.organisation("BA", "resource_centre")
    response = stack.post(
        "events",
        "/api/v1/events",
        {
            "title": f"Draft {uuid.uuid4().hex[:8]}",
            "type": "workshop",
            "country": "BA",
            "topics": [],
            "starts_at": "2026-12-15T09:00:00+00:00",
            "ends_at": "2026-12-15T12:00:00+00:00",
            "online_url": "https://meet.example.org/d",
            "organiser_id": vesta["id"],
            "status": "draft",
        },
    )
    assert response.status_code == 201, response.text
    event_id: str = response.json()["id"]
    return event_id


def editor_key(stack: Stack) -> dict[str, Any]:
    vesta = stack.organisation("BA", "resource_centre")
    response = stack.post(
        "registry",
        "/api/v1/api-keys",
        {"name": "editor", "role": "country_editor", "organisation_id": vesta["id"]},
    )
    assert response.status_code == 201, response.text
    key: dict[str, Any] = response.json()
    return key


def token_of(stack: Stack, key: dict[str, Any]) -> str:
    response = requests.post(
        stack.url("registry", "/api/v1/auth/token"),
        data={
            "grant_type": "client_credentials",
            "client_id": key["id"],
            "client_secret": key["secret"],
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def reads(stack: Stack, token: str, event_id: str) -> list[int]:
    """What events (a draft) and notify (deliveries) answer to ``token``."""
    return [
        requests.get(
            stack.url("events", f"/api/v1/events/{event_id}"), headers=bearer(token), timeout=10
        ).status_code,
        requests.get(
            stack.url("notify", "/api/v1/deliveries"), headers=bearer(token), timeout=10
        ).status_code,
    ]


class TestLocalVerification:
    def test_events_and_notify_accept_a_token_while_registry_is_down(self, stack: Stack) -> None:
        event_id = draft(stack)
        token = token_of(stack, editor_key(stack))
        before = reads(stack, token, event_id)

        stack.stop("registry")
        try:
            during = reads(stack, token, event_id)
        finally:
            stack.start("registry")

        assert before == during == [200, 200]

    def test_a_key_rotation_fails_no_request(self, stack: Stack) -> None:
        event_id = draft(stack)
        key = editor_key(stack)
        old_kid = registry_cli(stack, "keys", "list").split()[0]
        failures: list[str] = []
        done = threading.Event()
        count = 0

        def traffic() -> None:
            nonlocal count
            while not done.is_set():
                token = token_of(stack, key)
                for status in reads(stack, token, event_id):
                    count += 1
                    if status != 200:
                        failures.append(f"{status}")

        worker = threading.Thread(target=traffic)
        worker.start()
        try:
            done.wait(1.0)
            rotated = registry_cli(stack, "keys", "rotate")
            done.wait(2.0)
            registry_cli(stack, "keys", "retire", old_kid)
            done.wait(2.0)
        finally:
            done.set()
            worker.join(timeout=30)

        new_kid = registry_cli(stack, "keys", "list").split()[0]
        assert new_kid != old_kid and new_kid in rotated
        assert old_kid not in registry_cli(stack, "keys", "list")
        assert count > 10
        assert failures == []


class TestAudit:
    def test_the_audit_log_names_the_actor_of_each_write(self, stack: Stack) -> None:
        key = editor_key(stack)
        token = token_of(stack, key)
        vesta = stack.organisation("BA", "resource_centre")
        as_admin_key = stack.publish_event("BA", ["youth"])
        as_editor = requests.post(
            stack.url("events", "/api/v1/events"),
            json={
                "title": "By the editor",
                "type": "workshop",
                "country": "BA",
                "topics": ["youth"],
                "starts_at": "2026-12-15T09:00:00+00:00",
                "ends_at": "2026-12-15T12:00:00+00:00",
                "online_url": "https://meet.example.org/e",
                "organiser_id": vesta["id"],
            },
            headers=bearer(token),
            timeout=10,
        )
        assert as_editor.status_code == 201, as_editor.text

        actors = {}
        for event_id in (as_admin_key["id"], as_editor.json()["id"]):
            log = stack.get("events", "/api/v1/audit", resource_id=event_id).json()["items"]
            actors[event_id] = [(e["action"], e["actor"], e["role"]) for e in log]
        key_log = stack.get("registry", "/api/v1/audit", resource_id=key["id"]).json()["items"]

        assert actors[as_admin_key["id"]] == [("event.create", "admin-api-key", "network_admin")]
        assert actors[as_editor.json()["id"]] == [
            ("event.create", f"api-key:{key['id']}", "country_editor")
        ]
        assert [(e["action"], e["actor"]) for e in key_log] == [("api_key.create", "admin-api-key")]
