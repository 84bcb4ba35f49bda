"""Specification of credentials: invitations, passwords, API keys, tokens and key rotation."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from support.world import ADMIN_KEY_CALLER, World, add_deliveries, build_world
from tacso_registry import signing
from tacso_registry.models import Account
from tacso_shared.db import transaction
from tacso_shared.identity import (
    ALGORITHM,
    COUNTRY_EDITOR,
    ISSUER,
    NETWORK_ADMIN,
    ORGANISATION_MEMBER,
    SERVICE,
)

TOKEN = "/api/v1/auth/token"
ME = "/api/v1/auth/me"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def fresh_world(tmp_path: Path) -> Iterator[World]:
    """A world of its own (a test that rotates keys or stops registry changes it)."""
    with build_world(tmp_path, JWKS_CACHE_SECONDS="300") as world:
        add_deliveries(world.notify, "ev-ba", "BA")
        yield world


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def invite(world: World, email: str, role: str = ORGANISATION_MEMBER) -> dict[str, Any]:
    response = world.clients["registry"].post(
        "/api/v1/users",
        json={
            "email": email,
            "name": "Ana",
            "role": role,
            "organisation_id": world.orgs["ba_cso"].id,
        },
        headers=world.headers(ADMIN_KEY_CALLER),
    )
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def password_token(world: World, email: str, password: str) -> Any:
    return world.clients["registry"].post(
        TOKEN, data={"grant_type": "password", "username": email, "password": password}
    )


class TestPeople:
    def test_an_invited_person_sets_a_password_once_and_signs_in(self, world: World) -> None:
        invited = invite(world, "ana@example.org")
        registry = world.clients["registry"]

        used = registry.post(
            "/api/v1/users/password",
            json={"token": invited["invitation_token"], "password": PASSWORD},
        )
        again = registry.post(
            "/api/v1/users/password",
            json={"token": invited["invitation_token"], "password": "another long password"},
        )
        signed_in = password_token(world, "ana@example.org", PASSWORD)

        assert used.status_code == 204
        assert again.status_code == 400
        assert signed_in.status_code == 200
        assert signed_in.headers["Cache-Control"] == "no-store"
        me = registry.get(ME, headers=bearer(signed_in.get_json()["access_token"]))
        assert me.get_json()["role"] == ORGANISATION_MEMBER
        assert me.get_json()["subject"] == f"user:{invited['id']}"

    def test_passwords_are_stored_as_argon2id_hashes(self, world: World) -> None:
        invited = invite(world, "hash@example.org")
        world.clients["registry"].post(
            "/api/v1/users/password",
            json={"token": invited["invitation_token"], "password": PASSWORD},
        )

        with world.registry.sessions() as session:
            stored = session.scalar(
                sa.select(Account.password_hash).where(Account.id == invited["id"])
            )
        assert stored is not None and stored.startswith("$argon2id$")
        assert PASSWORD not in stored

    def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(self, world: World) -> None:
        invited = invite(world, "same@example.org")
        world.clients["registry"].post(
            "/api/v1/users/password",
            json={"token": invited["invitation_token"], "password": PASSWORD},
        )

        wrong = password_token(world, "same@example.org", "not the password at all")
        unknown = password_token(world, "nobody@example.org", PASSWORD)

        assert wrong.status_code == unknown.status_code == 400
        assert wrong.get_json() == unknown.get_json()
        assert wrong.get_json()["error"] == "invalid_grant"

    def test_an_invited_person_cannot_sign_in_before_setting_a_password(self, world: World) -> None:
        invite(world, "later@example.org")

        assert password_token(world, "later@example.org", "").status_code == 422
        assert password_token(world, "later@example.org", PASSWORD).status_code == 400

    def test_a_short_password_is_refused(self, world: World) -> None:
        invited = invite(world, "short@example.org")

        response = world.clients["registry"].post(
            "/api/v1/users/password",
            json={"token": invited["invitation_token"], "password": "short"},
        )

        assert response.status_code == 422

    def test_a_country_editor_must_work_for_an_rc_or_a_tacso_office(self, world: World) -> None:
        response = world.clients["registry"].post(
            "/api/v1/users",
            json={
                "email": "editor@example.org",
                "name": "E",
                "role": COUNTRY_EDITOR,
                "organisation_id": world.orgs["ba_cso"].id,
            },
            headers=world.headers(NETWORK_ADMIN),
        )

        assert response.status_code == 422
        assert "organisation_id" in response.get_json()["errors"]["json"]


class TestApiKeys:
    def test_the_secret_is_shown_once_and_starts_with_the_prefix(self, world: World) -> None:
        registry = world.clients["registry"]
        created = registry.post(
            "/api/v1/api-keys",
            json={"name": "web client", "role": SERVICE},
            headers=world.headers(NETWORK_ADMIN),
        ).get_json()

        listed = registry.get("/api/v1/api-keys", headers=world.headers(NETWORK_ADMIN))

        assert created["secret"].startswith(f"tacso_{created['prefix']}_")
        row = next(k for k in listed.get_json() if k["id"] == created["id"])
        assert "secret" not in row
        assert created["secret"] not in listed.get_data(as_text=True)

    def test_a_key_works_as_a_bearer_at_registry_and_records_its_last_use(
        self, world: World
    ) -> None:
        key = world.api_key(SERVICE, None)

        response = world.clients["registry"].get(ME, headers=bearer(key.secret))
        listed = world.clients["registry"].get(
            "/api/v1/api-keys", headers=world.headers(NETWORK_ADMIN)
        )

        assert response.get_json()["via"] == "api_key"
        row = next(k for k in listed.get_json() if k["id"] == key.key.id)
        assert row["last_used_at"] is not None

    def test_a_revoked_key_opens_nothing(self, world: World) -> None:
        key = world.api_key(SERVICE, None)
        registry = world.clients["registry"]

        revoked = registry.delete(
            f"/api/v1/api-keys/{key.key.id}", headers=world.headers(NETWORK_ADMIN)
        )
        as_bearer = registry.get(ME, headers=bearer(key.secret))
        exchanged = registry.post(
            TOKEN,
            json={
                "grant_type": "client_credentials",
                "client_id": key.key.id,
                "client_secret": key.secret,
            },
        )

        assert revoked.status_code == 204
        assert as_bearer.status_code == 401
        assert exchanged.status_code == 401
        assert exchanged.get_json()["error"] == "invalid_client"

    def test_a_key_is_not_a_credential_of_events_or_notify(self, world: World) -> None:
        key = world.api_key(NETWORK_ADMIN, None)

        for service, path in (("events", "/api/v1/events/x/publish"), ("notify", ME)):
            response = world.clients[service].post(path, headers=bearer(key.secret))
            assert response.status_code in (401, 404), service
        deliveries = world.clients["notify"].get("/api/v1/deliveries", headers=bearer(key.secret))
        assert deliveries.status_code == 401

    def test_revoking_an_unknown_key_is_404(self, world: World) -> None:
        response = world.clients["registry"].delete(
            "/api/v1/api-keys/nope", headers=world.headers(NETWORK_ADMIN)
        )

        assert response.status_code == 404


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return decoded


class TestTokens:
    def test_a_token_says_who_for_how_long_and_for_which_services(self, world: World) -> None:
        claims = _claims(world.tokens[COUNTRY_EDITOR])

        assert claims["iss"] == ISSUER
        assert claims["aud"] == ["tacso-registry", "tacso-events", "tacso-notify"]
        assert claims["exp"] - claims["iat"] == 900
        assert (claims["role"], claims["org"], claims["countries"]) == (
            COUNTRY_EDITOR,
            world.orgs["ba_rc"].id,
            ["BA"],
        )

    def test_a_token_for_one_service_is_refused_by_the_others(self, world: World) -> None:
        token = world.token(world.api_keys[NETWORK_ADMIN], audience="tacso-registry")

        assert world.clients["registry"].get(ME, headers=bearer(token)).status_code == 200
        deliveries = world.clients["notify"].get("/api/v1/deliveries", headers=bearer(token))
        assert deliveries.status_code == 401

    def test_a_json_token_request_works_like_a_form(self, world: World) -> None:
        key = world.api_keys[SERVICE]
        response = world.clients["registry"].post(
            TOKEN,
            json={
                "grant_type": "client_credentials",
                "client_id": key.key.id,
                "client_secret": key.secret,
            },
        )

        assert response.status_code == 200
        assert response.get_json()["token_type"] == "Bearer"

    def test_an_expired_or_forged_token_is_401(self, world: World) -> None:
        with world.registry.sessions() as session:
            kid = signing.active_keys(session)[0].kid
        now = datetime.now(UTC)
        claims = {
            "iss": ISSUER,
            "aud": ["tacso-notify"],
            "sub": "x",
            "role": NETWORK_ADMIN,
            "countries": [],
            "iat": now - timedelta(hours=1),
            "exp": now - timedelta(minutes=30),
        }
        with transaction(world.registry.sessions) as session:
            expired = signing.sign(session, claims)
        forged = jwt.encode(
            {**claims, "exp": now + timedelta(minutes=5)},
            Ed25519PrivateKey.generate(),
            algorithm=ALGORITHM,
            headers={"kid": kid},
        )
        unsigned = jwt.encode({**claims, "exp": now + timedelta(minutes=5)}, "", algorithm="none")

        for token in (expired, forged, unsigned):
            response = world.clients["notify"].get("/api/v1/deliveries", headers=bearer(token))
            assert response.status_code == 401
            assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]

    def test_the_jwks_publishes_public_keys_only(self, world: World) -> None:
        document = world.clients["registry"].get("/.well-known/jwks.json").get_json()

        assert document["keys"]
        for key in document["keys"]:
            assert (key["kty"], key["crv"], key["alg"]) == ("OKP", "Ed25519", ALGORITHM)
            assert "d" not in key


class TestLocalVerification:
    def test_events_and_notify_accept_tokens_while_registry_is_down(
        self, fresh_world: World
    ) -> None:
        world = fresh_world
        token = world.tokens[COUNTRY_EDITOR]
        draft = world.draft("BA", world.orgs["ba_rc"])
        before = world.clients["events"].get(f"/api/v1/events/{draft}", headers=bearer(token))
        seen = world.clients["notify"].get("/api/v1/deliveries", headers=bearer(token))

        world.stop_registry()
        events = world.clients["events"].get(f"/api/v1/events/{draft}", headers=bearer(token))
        notify = world.clients["notify"].get("/api/v1/deliveries", headers=bearer(token))

        assert before.status_code == seen.status_code == 200
        assert events.status_code == notify.status_code == 200

    def test_a_rotation_fails_no_request(self, fresh_world: World) -> None:
        world = fresh_world
        key = world.api_keys[COUNTRY_EDITOR]
        failures: list[str] = []

        def use(token: str, step: str) -> None:
            for service, path in (("notify", "/api/v1/deliveries"), ("registry", ME)):
                response = world.clients[service].get(path, headers=bearer(token))
                if response.status_code != 200:
                    failures.append(f"{step}: {service} {response.status_code}")

        old_token = world.token(key)
        use(old_token, "before")
        with world.registry.sessions() as session:
            old_kid = signing.active_keys(session)[0].kid
        with transaction(world.registry.sessions) as session:
            new_kid = signing.rotate(session).kid
        new_token = world.token(key)
        use(new_token, "new key, unknown to notify's cache")
        use(old_token, "old key, still published")
        with transaction(world.registry.sessions) as session:
            signing.retire(session, old_kid)
        time.sleep(1.1)  # registry reads its own keys again after a second on an unknown kid
        use(world.token(key), "after the old key retired")

        assert jwt.get_unverified_header(new_token)["kid"] == new_kid != old_kid
        assert failures == []

    def test_the_key_that_signs_cannot_be_retired(self, fresh_world: World) -> None:
        with transaction(fresh_world.registry.sessions) as session:
            kid = signing.active_keys(session)[0].kid
            with pytest.raises(signing.LastKey):
                signing.retire(session, kid)
