"""Specification of self-registration (double opt-in), its pages and the invitation mail."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from tacso_registry import signups
from tacso_registry.app import create_app
from tacso_registry.bootstrap import Registry, apply_migrations, bootstrap, load_settings
from tacso_registry.models import Organisation, Signup, outbox
from tacso_shared.contracts import (
    ORGANISATION_REGISTERED,
    SIGNUP_CONFIRMATION_REQUESTED,
    USER_INVITED,
    load_data,
)
from tacso_shared.envelope import parse_envelope
from tacso_shared.links import LinkSigner, LinkToken

SIGNUPS = "/api/v1/signups"


def signup_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Udruženje Čisto Nebo",
        "kind": "cso",
        "country": "BA",
        "topics": ["environment", "youth"],
        "language": "bs",
        "email": "info@cisto-nebo.example.org",
        "consent_text_version": signups.CONSENT_TEXT_VERSION,
        "consent": True,
    }
    body.update(changes)
    return body


def messages(registry: Registry, message_type: str) -> list[Any]:
    with registry.engine.connect() as conn:
        rows = conn.execute(
            sa.select(outbox.c.body)
            .where(outbox.c.message_type == message_type)
            .order_by(outbox.c.created_at)
        ).all()
    return [load_data(parse_envelope(row.body)) for row in rows]


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def organisations(registry: Registry) -> list[Organisation]:
    with registry.sessions() as session:
        return list(session.scalars(sa.select(Organisation)))


def audience(client: FlaskClient, admin: dict[str, str]) -> list[str]:
    """The addresses an invitation about an environment event in BA would go to."""
    body = client.get(
        "/api/v1/organisations?country=BA&kind=cso&topic=environment", headers=admin
    ).get_json()
    return [item["email"] for item in body["items"]]


class TestSignupApi:
    def test_an_unconfirmed_signup_is_in_no_audience_until_its_link_is_posted(
        self, client: FlaskClient, admin: dict[str, str], registry: Registry
    ) -> None:
        response = client.post(SIGNUPS, json=signup_body())

        assert response.status_code == 202
        assert response.get_json()["status"] == "accepted"
        assert audience(client, admin) == []
        (mail,) = messages(registry, SIGNUP_CONFIRMATION_REQUESTED)
        assert mail.already_registered is False
        assert mail.email == "info@cisto-nebo.example.org"
        assert mail.language == "bs"
        assert mail.confirm_url.startswith("http://localhost:5001/signup/confirm/")
        assert messages(registry, ORGANISATION_REGISTERED) == []

        page = client.get(f"/signup/confirm/{token_of(mail.confirm_url)}")
        assert page.status_code == 200
        assert audience(client, admin) == []  # a GET changes nothing
        assert "Udruženje Čisto Nebo" in page.get_data(as_text=True)
        assert '<html lang="bs">' in page.get_data(as_text=True)

        confirmed = client.post(f"/signup/confirm/{token_of(mail.confirm_url)}")

        assert confirmed.status_code == 200
        assert audience(client, admin) == ["info@cisto-nebo.example.org"]
        (registered,) = messages(registry, ORGANISATION_REGISTERED)
        assert registered.topics == ("environment", "youth")
        with registry.sessions() as session:
            record = session.scalars(sa.select(Signup)).one()
        assert record.status == "confirmed"
        assert record.consent_basis == "consent"
        assert record.consent_source == "self_registration"
        assert record.consent_text_version == signups.CONSENT_TEXT_VERSION
        assert record.consented_at is not None
        assert record.organisation_id == registered.organisation_id

    def test_a_used_link_answers_410_and_creates_nothing_more(
        self, client: FlaskClient, registry: Registry
    ) -> None:
        client.post(SIGNUPS, json=signup_body())
        (mail,) = messages(registry, SIGNUP_CONFIRMATION_REQUESTED)
        path = f"/signup/confirm/{token_of(mail.confirm_url)}"
        assert client.post(path).status_code == 200

        assert client.post(path).status_code == 410
        assert client.get(path).status_code == 410
        assert len(organisations(registry)) == 1

    def test_a_known_address_gets_the_same_answer_and_a_different_mail(
        self, client: FlaskClient, register: Any, registry: Registry
    ) -> None:
        register(email="known@example.org")
        unknown = client.post(SIGNUPS, json=signup_body(email="new@example.org"))
        known = client.post(SIGNUPS, json=signup_body(email="Known@Example.org"))

        assert known.status_code == unknown.status_code == 202
        assert known.get_json() == unknown.get_json()
        first, second = messages(registry, SIGNUP_CONFIRMATION_REQUESTED)
        assert (first.email, first.already_registered) == ("new@example.org", False)
        assert (second.email, second.already_registered) == ("known@example.org", True)
        assert second.confirm_url is None
        with registry.sessions() as session:
            assert session.scalar(sa.select(sa.func.count()).select_from(Signup)) == 1

    def test_signing_up_again_replaces_the_pending_signup_and_its_link(
        self, client: FlaskClient, registry: Registry
    ) -> None:
        client.post(SIGNUPS, json=signup_body())
        client.post(SIGNUPS, json=signup_body(name="Čisto Nebo"))
        old, new = messages(registry, SIGNUP_CONFIRMATION_REQUESTED)

        assert client.post(f"/signup/confirm/{token_of(old.confirm_url)}").status_code == 410
        assert client.post(f"/signup/confirm/{token_of(new.confirm_url)}").status_code == 200
        assert [o.name for o in organisations(registry)] == ["Čisto Nebo"]

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"consent": False}, "consent"),
            ({"consent": None}, "consent"),
            ({"kind": "resource_centre"}, "kind"),
            ({"language": "de"}, "language"),
            ({"country": "HR"}, "country"),
            ({"email": "not an address"}, "email"),
            ({"topics": ["astrology"]}, "topics"),
            ({"name": "   "}, "name"),
            ({"name": "Line\rbreak"}, "name"),
        ],
    )
    def test_bad_signups_are_a_422_naming_the_field(
        self, client: FlaskClient, registry: Registry, changes: dict[str, Any], field: str
    ) -> None:
        response = client.post(SIGNUPS, json=signup_body(**changes))

        assert response.status_code == 422
        assert field in response.get_json()["errors"]["json"]
        assert messages(registry, SIGNUP_CONFIRMATION_REQUESTED) == []

    def test_consent_is_required(self, client: FlaskClient) -> None:
        body = signup_body()
        del body["consent"]

        response = client.post(SIGNUPS, json=body)

        assert response.status_code == 422
        assert "consent" in response.get_json()["errors"]["json"]


class TestConfirmationLinks:
    def test_an_expired_link_shows_a_410_page(self, client: FlaskClient) -> None:
        past = datetime.now(UTC) - timedelta(seconds=1)
        token = LinkSigner(("development-link-key-change-me",)).sign(
            LinkToken("signup", "some-signup", past, language="sr")
        )

        response = client.get(f"/signup/confirm/{token}")

        assert response.status_code == 410
        assert response.mimetype == "text/html"
        assert "script-src" not in response.headers["Content-Security-Policy"]
        assert "<h1>" in response.get_data(as_text=True)

    def test_a_tampered_link_shows_a_400_page(
        self, client: FlaskClient, registry: Registry
    ) -> None:
        client.post(SIGNUPS, json=signup_body())
        (mail,) = messages(registry, SIGNUP_CONFIRMATION_REQUESTED)
        token = token_of(mail.confirm_url)
        tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")

        assert client.get(f"/signup/confirm/{tampered}").status_code == 400
        assert client.post(f"/signup/confirm/{tampered}").status_code == 400
        assert organisations(registry) == []

    def test_a_link_made_for_something_else_is_a_400(self, client: FlaskClient) -> None:
        future = datetime.now(UTC) + timedelta(days=1)
        token = LinkSigner(("development-link-key-change-me",)).sign(
            LinkToken("unsubscribe", "an-organisation", future)
        )

        assert client.post(f"/signup/confirm/{token}").status_code == 400


class TestExpiry:
    def test_unconfirmed_signups_are_purged_after_seven_days(
        self, client: FlaskClient, registry: Registry
    ) -> None:
        client.post(SIGNUPS, json=signup_body())
        with registry.sessions() as session:
            later = datetime.now(UTC) + timedelta(days=signups.SIGNUP_DAYS, seconds=1)
            assert signups.purge_expired(session, datetime.now(UTC)) == 0
            assert signups.purge_expired(session, later) == 1
            session.commit()
            assert session.scalar(sa.select(sa.func.count()).select_from(Signup)) == 0


class TestSignupPages:
    def test_the_form_is_in_the_language_asked_for_with_a_strict_policy(
        self, client: FlaskClient
    ) -> None:
        response = client.get("/signup", headers={"Accept-Language": "mk, en;q=0.5"})

        html = response.get_data(as_text=True)
        assert response.status_code == 200
        assert '<html lang="mk">' in html
        assert "<script" not in html
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "form-action 'self'" in policy
        assert 'name="consent"' in html and 'for="consent-box"' in html
        assert client.get("/signup?lang=tr").headers["Content-Language"] == "tr"

    def test_posting_the_form_signs_up_and_says_to_check_the_mail(
        self, client: FlaskClient, registry: Registry
    ) -> None:
        form = {
            **{k: v for k, v in signup_body().items() if k not in ("topics", "consent")},
            "topics": ["environment", "youth"],
            "consent": "yes",
        }

        response = client.post("/signup?lang=hr", data=form)

        assert response.status_code == 202
        (mail,) = messages(registry, SIGNUP_CONFIRMATION_REQUESTED)
        assert mail.name == "Udruženje Čisto Nebo"

    def test_a_form_without_consent_is_shown_again_with_the_problem(
        self, client: FlaskClient, registry: Registry
    ) -> None:
        form = {k: v for k, v in signup_body().items() if k not in ("topics", "consent")}

        response = client.post("/signup?lang=en", data=form)

        html = response.get_data(as_text=True)
        assert response.status_code == 422
        assert "Please tick the box" in html
        assert 'value="info@cisto-nebo.example.org"' in html
        assert messages(registry, SIGNUP_CONFIRMATION_REQUESTED) == []

    def test_a_nul_in_the_form_is_refused_not_stored(
        self, client: FlaskClient, registry: Registry
    ) -> None:
        form = {**{k: v for k, v in signup_body().items() if k != "topics"}, "consent": "yes"}

        response = client.post("/signup", data={**form, "name": "A\x00B"})

        assert response.status_code == 422
        assert messages(registry, SIGNUP_CONFIRMATION_REQUESTED) == []

    def test_markup_in_a_name_is_escaped_on_the_confirmation_page(
        self, client: FlaskClient, registry: Registry
    ) -> None:
        client.post(SIGNUPS, json=signup_body(name="<script>alert(1)</script>"))
        (mail,) = messages(registry, SIGNUP_CONFIRMATION_REQUESTED)

        html = client.get(f"/signup/confirm/{token_of(mail.confirm_url)}").get_data(as_text=True)

        assert "<script>" not in html
        assert "&lt;script&gt;" in html


class TestRateLimit:
    def test_the_sixth_signup_in_an_hour_is_a_429_with_retry_after(self, tmp_path: Path) -> None:
        settings = load_settings(
            {"VAR_DIR": str(tmp_path), "RATE_LIMIT_SIGNUP": "5/hour", "ADMIN_API_KEY": "k"}
        )
        apply_migrations(settings.common)
        registry = bootstrap(settings)
        try:
            client = create_app(registry).test_client()
            statuses = [
                client.post(SIGNUPS, json=signup_body(email=f"a{i}@example.org")).status_code
                for i in range(5)
            ]
            refused = client.post(SIGNUPS, json=signup_body(email="a6@example.org"))
            page = client.post("/signup", data={"name": "x"})
        finally:
            registry.engine.dispose()

        assert statuses == [202] * 5
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 3600
        assert page.status_code == 429  # the form shares the budget


class TestUserInvitation:
    def test_inviting_a_person_mails_a_link_to_the_set_password_page(
        self, client: FlaskClient, admin: dict[str, str], register: Any, registry: Registry
    ) -> None:
        org = register(language="sr-Latn", country="RS")
        response = client.post(
            "/api/v1/users",
            json={
                "email": "ana@example.org",
                "name": "Ana",
                "role": "organisation_member",
                "organisation_id": org["id"],
            },
            headers=admin,
        )
        assert response.status_code == 201
        assert "invitation_token" in response.get_json()  # the API answer is unchanged
        (mail,) = messages(registry, USER_INVITED)
        assert (mail.email, mail.language, mail.country) == ("ana@example.org", "sr-Latn", "RS")
        path = re.sub(r"^http://localhost:5001", "", mail.set_password_url)

        page = client.get(path)
        assert page.status_code == 200
        assert "ana@example.org" in page.get_data(as_text=True)
        mismatch = client.post(path, data={"password": "a" * 12, "repeat": "b" * 12})
        assert mismatch.status_code == 422
        done = client.post(path, data={"password": "a long password", "repeat": "a long password"})
        assert done.status_code == 200
        token = client.post(
            "/api/v1/auth/token",
            data={
                "grant_type": "password",
                "username": "ana@example.org",
                "password": "a long password",
            },
        )
        assert token.status_code == 200
        assert client.get(path).status_code == 400  # used
        assert client.get("/users/set-password/forged.token.here").status_code == 400
