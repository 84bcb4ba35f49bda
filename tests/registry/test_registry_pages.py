"""The personal pages of every mail: preferences and one-click unsubscribe (RFC 8058), in the
reader's language, without cookies or JavaScript, under a strict Content-Security-Policy."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from babel.messages.extract import extract_from_dir, extract_from_file
from babel.messages.pofile import read_po
from flask.testing import FlaskClient

import tacso_shared.i18n
import tacso_shared.vocabulary
from tacso_registry.bootstrap import Registry
from tacso_registry.i18n import CATALOG, TRANSLATIONS
from tacso_registry.models import outbox
from tacso_registry.preference_pages import make_link_token
from tacso_shared.contracts import ORGANISATION_UPDATED
from tacso_shared.i18n import CATALOGS, LOCALES
from tacso_shared.links import LinkSigner, LinkToken

ORGANISATIONS = "/api/v1/organisations"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def signer(registry: Registry) -> LinkSigner:
    return LinkSigner(registry.settings.common.link_signing_keys)


def token_for(registry: Registry, org_id: str, language: str | None = "bs", **kw: Any) -> str:
    return signer(registry).sign(make_link_token(org_id, language, **kw))


def in_audience(client: FlaskClient, admin: dict[str, str], org_id: str, **query: Any) -> bool:
    params = {"country": "BA", "kind": "cso", "mail_kind": "invitation", **query}
    response = client.get(ORGANISATIONS, query_string=params, headers=admin)
    return org_id in [item["id"] for item in response.get_json()["items"]]


def page_text(response: Any) -> str:
    return str(response.get_data(as_text=True))


class TestOneClickUnsubscribe:
    def test_a_get_only_asks_and_changes_nothing(
        self, client: FlaskClient, admin: dict[str, str], register: Any, registry: Registry
    ) -> None:
        org = register()

        response = client.get(f"/unsubscribe/{token_for(registry, org['id'])}")

        assert response.status_code == 200
        body = page_text(response)
        assert '<html lang="bs">' in body
        assert "Odjavi se sa svih poruka" in body
        assert 'name="List-Unsubscribe" value="One-Click"' in body
        assert in_audience(client, admin, org["id"])

    def test_the_one_click_post_opts_out_of_everything_at_once(
        self, client: FlaskClient, admin: dict[str, str], register: Any, registry: Registry
    ) -> None:
        org = register()

        response = client.post(f"/unsubscribe/{token_for(registry, org['id'])}", data=ONE_CLICK)

        assert response.status_code == 200
        assert "Odjavljeni ste" in page_text(response)
        assert "Set-Cookie" not in response.headers
        assert not in_audience(client, admin, org["id"])
        assert not in_audience(client, admin, org["id"], mail_kind="reminder")
        prefs = client.get(f"{ORGANISATIONS}/{org['id']}/preferences", headers=admin)
        assert prefs.get_json()["all"] is False
        with registry.engine.connect() as conn:
            [body] = conn.execute(
                sa.select(outbox.c.body).where(outbox.c.message_type == ORGANISATION_UPDATED)
            ).scalars()
        published = json.loads(body)["data"]
        assert (published["active"], published["mailing_consent"]) == (True, False)

    def test_a_post_without_the_one_click_body_changes_nothing(
        self, client: FlaskClient, admin: dict[str, str], register: Any, registry: Registry
    ) -> None:
        org = register()

        response = client.post(
            f"/unsubscribe/{token_for(registry, org['id'])}", data={"List-Unsubscribe": "x"}
        )

        assert response.status_code == 400
        assert "Ništa nije promijenjeno" in page_text(response)
        assert in_audience(client, admin, org["id"])


class TestPreferencesPage:
    def test_shows_the_form_with_every_kind_and_topic_ticked(
        self, client: FlaskClient, register: Any, registry: Registry
    ) -> None:
        org = register(name="Udruženje <Zdravo>")

        response = client.get(f"/preferences/{token_for(registry, org['id'])}")

        body = page_text(response)
        assert response.status_code == 200
        assert "Vaše postavke primanja poruka" in body
        assert "Udruženje &lt;Zdravo&gt;" in body
        assert body.count(" checked") == 1 + 4 + len(tacso_shared.vocabulary.TOPICS)
        assert "<script" not in body and "style=" not in body
        assert '<label for="topic-youth">Mladi</label>' in body

    def test_unticking_a_topic_opts_out_of_that_topic_only_and_ticking_restores(
        self, client: FlaskClient, admin: dict[str, str], register: Any, registry: Registry
    ) -> None:
        org = register(topics=["youth", "environment"])
        path = f"/preferences/{token_for(registry, org['id'])}"
        everything = {
            "form": "preferences",
            "all": "yes",
            **{f"kind-{k}": "yes" for k in ("invitation", "press_notice", "reminder", "update")},
            "topic-environment": "yes",
        }

        saved = client.post(path, data=everything)

        assert saved.status_code == 200
        assert "Vaše postavke su sačuvane." in page_text(saved)
        youth = {"topic": ["youth"], "event_topic": ["youth"]}
        environment = {"topic": ["environment"], "event_topic": ["environment"]}
        assert not in_audience(client, admin, org["id"], **youth)
        assert in_audience(client, admin, org["id"], **environment)

        client.post(path, data={**everything, "topic-youth": "yes"})
        assert in_audience(client, admin, org["id"], **youth)

    def test_unticking_a_kind_opts_out_of_that_kind(
        self, client: FlaskClient, admin: dict[str, str], register: Any, registry: Registry
    ) -> None:
        org = register()
        form = {"form": "preferences", "all": "yes", "kind-reminder": "yes"}
        form |= {f"topic-{t}": "yes" for t in tacso_shared.vocabulary.TOPICS}

        client.post(f"/preferences/{token_for(registry, org['id'])}", data=form)

        assert not in_audience(client, admin, org["id"])
        assert in_audience(client, admin, org["id"], mail_kind="reminder")

    def test_a_post_that_is_not_the_form_changes_nothing(
        self, client: FlaskClient, admin: dict[str, str], register: Any, registry: Registry
    ) -> None:
        org = register()

        response = client.post(f"/preferences/{token_for(registry, org['id'])}", data={})

        assert response.status_code == 400
        assert in_audience(client, admin, org["id"])


class TestBadLinks:
    def test_a_tampered_token_gets_a_friendly_400_in_the_browsers_language(
        self, client: FlaskClient, register: Any, registry: Registry
    ) -> None:
        token = token_for(registry, register()["id"])
        tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")

        response = client.get(f"/preferences/{tampered}", headers={"Accept-Language": "tr"})

        assert response.status_code == 400
        assert "bağlantı geçerli değil" in page_text(response)

    @pytest.mark.parametrize("raw", ["x", "not.a.token", "a" * 300, "%00"])
    def test_garbage_tokens_are_a_400_page(self, client: FlaskClient, raw: str) -> None:
        for path in (f"/preferences/{raw}", f"/unsubscribe/{raw}"):
            response = client.get(path)
            assert response.status_code == 400, path
        assert client.post(f"/unsubscribe/{raw}", data=ONE_CLICK).status_code == 400

    def test_an_expired_link_is_a_410_in_the_links_language(
        self, client: FlaskClient, register: Any, registry: Registry
    ) -> None:
        past = datetime.now(UTC) - timedelta(days=400)
        token = token_for(registry, register()["id"], "mk", now=past)

        response = client.post(f"/unsubscribe/{token}", data=ONE_CLICK)

        assert response.status_code == 410
        assert "Оваа врска е истечена" in page_text(response)

    def test_a_token_for_something_else_is_refused(
        self, client: FlaskClient, register: Any, registry: Registry
    ) -> None:
        other = LinkToken("rsvp", register()["id"], datetime.now(UTC) + timedelta(days=1))

        response = client.get(f"/preferences/{signer(registry).sign(other)}")

        assert response.status_code == 400

    def test_a_token_signed_with_another_key_is_refused(
        self, client: FlaskClient, register: Any
    ) -> None:
        forged = LinkSigner(["someone-elses-key"]).sign(make_link_token(register()["id"], "en"))

        assert client.post(f"/unsubscribe/{forged}", data=ONE_CLICK).status_code == 400

    def test_the_link_of_an_erased_organisation_is_gone(
        self, client: FlaskClient, admin: dict[str, str], register: Any, registry: Registry
    ) -> None:
        org = register()
        token = token_for(registry, org["id"], "hr")
        client.delete(f"{ORGANISATIONS}/{org['id']}", headers=admin)

        response = client.get(f"/preferences/{token}")

        assert response.status_code == 410
        assert "Ova poveznica više nije valjana" in page_text(response)
        assert client.post(f"/unsubscribe/{token}", data=ONE_CLICK).status_code == 410

    def test_an_unknown_language_falls_back_to_the_browsers(
        self, client: FlaskClient, register: Any, registry: Registry
    ) -> None:
        token = token_for(registry, register()["id"], None)

        response = client.get(
            f"/preferences/{token}?lang=xx-klingon", headers={"Accept-Language": "sq"}
        )

        assert response.status_code == 200
        assert "Preferencat tuaja për email-et" in page_text(response)


class TestPagesAreSafeAndInEveryLanguage:
    def test_the_csp_allows_nothing_but_posting_to_itself(
        self, client: FlaskClient, register: Any, registry: Registry
    ) -> None:
        response = client.get(f"/preferences/{token_for(registry, register()['id'])}")

        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "form-action 'self'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Referrer-Policy"] == "no-referrer"

    @pytest.mark.parametrize("language", sorted(LOCALES))
    def test_the_page_is_in_the_readers_language_with_a_switcher(
        self, client: FlaskClient, register: Any, registry: Registry, language: str
    ) -> None:
        response = client.get(f"/preferences/{token_for(registry, register()['id'], language)}")

        body = page_text(response)
        assert f'<html lang="{language}">' in body
        assert CATALOG.gettext(language, "Your mailing preferences") in body
        for code in LOCALES:
            assert f'lang="{code}"' in body

    def test_every_catalog_has_every_message(self) -> None:
        package = Path(TRANSLATIONS).parent
        method_map = [("**/templates/**", "jinja2"), ("**.py", "python")]
        options = {"**/templates/**": {"extensions": "jinja2.ext.i18n", "trim_blocks": "true"}}
        found = extract_from_dir(
            str(package), method_map, options, keywords={"_": None, "N_": None}
        )
        shared = extract_from_file("python", tacso_shared.i18n.__file__, keywords={"N_": None})
        wanted = {m for _, _, m, _, _ in found if isinstance(m, str)}
        wanted |= {m for _, m, _, _ in shared if isinstance(m, str)}
        for language, folder in CATALOGS.items():
            if language == "en":
                continue
            with (TRANSLATIONS / folder / "LC_MESSAGES" / "messages.po").open("rb") as po:
                catalog = read_po(po)
            translated = {m.id for m in catalog if m.id and m.string and not m.fuzzy}
            assert wanted - translated == set(), language
