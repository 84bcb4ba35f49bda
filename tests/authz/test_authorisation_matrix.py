"""The authorisation matrix: every operation of the three APIs x every caller x every scope.

One table (:data:`RULES`) says, for each operation, what each caller gets when it acts on its own
organisation, another organisation of its country, or another country. The cells are generated
from it and run against the three services in-process, with real tokens. An operation of an
OpenAPI document without a row fails :func:`test_every_operation_has_a_row`: a new endpoint
cannot be added without its rules.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from support.world import ADMIN_KEY_CALLER, ANONYMOUS, CALLERS, World, _org
from tacso_events import registrations
from tacso_notify import webhooks
from tacso_shared.db import transaction
from tacso_shared.identity import COUNTRY_EDITOR, NETWORK_ADMIN, ORGANISATION_MEMBER, SERVICE

# Scopes: what a request acts on, seen from the caller (BA is the caller's country).
NONE = "no-target"
OWN = "own-org"
OTHER_ORG = "other-org-own-country"
OWN_ORG_ABROAD = "own-org-other-country"
OTHER_COUNTRY = "other-country"

Expect = Callable[[str, str], int]


@dataclass(frozen=True)
class Call:
    """One HTTP request of a cell."""

    method: str
    path: str
    json: dict[str, Any] | None = None
    query: dict[str, str] | None = None
    form: dict[str, str] | None = None
    #: A raw body (a bounce, a CSV list), sent as ``content_type``.
    raw: bytes | None = None
    content_type: str = "message/rfc822"


@dataclass(frozen=True)
class Rule:
    """One operation: the scopes it is tried in, how to ask, and what each caller gets."""

    service: str
    method: str
    path: str
    scopes: tuple[str, ...]
    request: Callable[[World, str, str], Call]
    expect: Expect
    #: Callers for whom a scope cannot exist (a CSO member's own organisation organises nothing).
    impossible: tuple[tuple[str, str], ...] = ()


def by_role(default: int = 403, anonymous: int = 401, **statuses: int | dict[str, int]) -> Expect:
    """Expected status by caller (the admin key is a network admin), optionally by scope."""

    def expect(caller: str, scope: str) -> int:
        if caller == ANONYMOUS:
            return anonymous
        role = NETWORK_ADMIN if caller == ADMIN_KEY_CALLER else caller
        value = statuses.get(role, default)
        return value[scope] if isinstance(value, dict) else value

    return expect


def everyone(status: int) -> Expect:
    """The same status for every caller, anonymous included."""
    return lambda caller, scope: status


def _country(scope: str) -> str:
    return "RS" if scope in (OTHER_COUNTRY, OWN_ORG_ABROAD) else "BA"


def _target_org(world: World, caller: str, scope: str) -> Any:
    if scope in (OWN, OWN_ORG_ABROAD):
        return world.own_org(caller)
    if scope == OTHER_ORG:
        return world.other_org_same_country(caller)
    return world.orgs["rs_rc"]


def _organisation_body(scope: str) -> dict[str, Any]:
    return {
        "name": "Matrix CSO",
        "kind": "cso",
        "country": _country(scope),
        "email": f"matrix-{uuid.uuid4().hex[:12]}@example.org",
        "language": "en",
        "topics": ["youth"],
    }


def _event_body(world: World, caller: str, scope: str) -> dict[str, Any]:
    return {
        "title": "Matrix workshop",
        "type": "workshop",
        "country": _country(scope),
        "topics": ["youth"],
        "starts_at": "2026-12-15T09:00:00+00:00",
        "ends_at": "2026-12-15T12:00:00+00:00",
        "online_url": "https://meet.example.org/matrix",
        "organiser_id": _target_org(world, caller, scope).id,
    }


def _draft(world: World, caller: str, scope: str) -> str:
    return world.draft(_country(scope), _target_org(world, caller, scope))


def _published(world: World, caller: str, scope: str) -> str:
    """A new published event (a draft published with the admin key); its id."""
    event_id = _draft(world, caller, scope)
    response = world.clients["events"].post(
        f"/api/v1/events/{event_id}/publish", headers=world.headers(ADMIN_KEY_CALLER)
    )
    assert response.status_code == 200, response.get_json()
    return event_id


def _fresh_key(world: World) -> str:
    return world.api_key(ORGANISATION_MEMBER, world.orgs["ba_cso"]).key.id


def _suppressed(world: World) -> str:
    """An address on the suppression list (a fresh one for each cell)."""
    email = f"lift-{uuid.uuid4().hex[:12]}@example.org"
    world.notify.ledger.suppress([(email, "matrix")])
    return email


def _rc(scope: str, world: World) -> Any:
    """The Resource Centre of the scope's country (the organiser of its drafts)."""
    return world.orgs["rs_rc" if _country(scope) == "RS" else "ba_rc"]


def _webhook(world: World, scope: str) -> str:
    """A webhook subscription limited to the scope's country (a fresh one for each cell)."""
    with transaction(world.notify.sessions) as session:
        created = webhooks.create_subscription(
            session, "http://127.0.0.1:9/hook", ["event.published"], [_country(scope)], "matrix"
        )
    return created.subscription.id


def _on_webhook(method: str, tail: str) -> Callable[[World, str, str], Call]:
    """A request on a fresh subscription of the scope's country."""
    return lambda w, c, s: Call(method, f"/api/v1/webhooks/{_webhook(w, s)}{tail}")


def _webhook_body(scope: str) -> dict[str, Any]:
    return {
        "url": "http://127.0.0.1:9/hook",
        "event_types": ["event.published", "registration.*"],
        "countries": [_country(scope)],
    }


def _fresh_org(world: World, caller: str, scope: str) -> str:
    """A new CSO in the scope's country, for the cells that deactivate or erase it; its id."""
    with transaction(world.registry.sessions) as session:
        org = _org(session, f"Fresh CSO {uuid.uuid4().hex[:6]}", "cso", _country(scope))
        session.flush()
        return org.id


_ORG_CHANGE = by_role(
    network_admin=200,
    country_editor={OWN: 200, OTHER_ORG: 200, OTHER_COUNTRY: 403},
    organisation_member={OWN: 200, OTHER_ORG: 403, OTHER_COUNTRY: 403},
)
_ORG_ADMINISTER = by_role(network_admin=200, country_editor={OTHER_ORG: 200, OTHER_COUNTRY: 403})
_FRESH_SCOPES = (OTHER_ORG, OTHER_COUNTRY)


def _org_path(world: World, caller: str, scope: str, tail: str = "") -> str:
    return f"/api/v1/organisations/{_target_org(world, caller, scope).id}{tail}"


_BOUNCE = (
    b"From: MAILER-DAEMON@mx.example.org\r\nTo: events@tacso.local\r\n"
    b"Subject: Undelivered Mail\r\n\r\nYour message could not be delivered.\r\n"
)


def _open_event(world: World, country: str, capacity: int = 5) -> str:
    """A new published event of ``country`` (created with the admin key); its id."""
    organiser = world.orgs["rs_rc"] if country == "RS" else world.orgs["ba_rc"]
    body = {
        "title": f"Open {uuid.uuid4().hex[:8]}",
        "type": "workshop",
        "country": country,
        "topics": ["youth"],
        "starts_at": "2027-03-15T09:00:00+00:00",
        "ends_at": "2027-03-15T15:00:00+00:00",
        "online_url": "https://meet.example.org/open",
        "organiser_id": organiser.id,
        "capacity": capacity,
    }
    response = world.clients["events"].post(
        "/api/v1/events", json=body, headers=world.headers(ADMIN_KEY_CALLER)
    )
    assert response.status_code == 201, response.get_json()
    event_id: str = response.get_json()["id"]
    return event_id


def _registration(world: World, caller: str, scope: str, offered: bool = False) -> str:
    """The path of a new registration of the scope's organisation (an open offer if ``offered``)."""
    event_id = _open_event(world, _country(scope), capacity=1 if offered else 5)
    policy = world.events.policy
    with transaction(world.events.sessions) as session:
        if offered:
            filler = registrations.register(session, event_id, "matrix-filler", 1, policy)
        outcome = registrations.register(
            session, event_id, _target_org(world, caller, scope).id, 1, policy
        )
        if offered:
            registrations.cancel(session, event_id, filler.registration.id, policy)
        registration_id = outcome.registration.id
    return f"/api/v1/events/{event_id}/registrations/{registration_id}"


_EVENT_SCOPES = (OWN, OTHER_ORG, OTHER_COUNTRY)
_REGISTRATION_SCOPES = (OWN, OTHER_ORG, OTHER_COUNTRY)
_MEMBER_ORGANISES_NOTHING = ((ORGANISATION_MEMBER, OWN),)

RULES: tuple[Rule, ...] = (
    # ---- registry --------------------------------------------------------------------------
    Rule(
        "registry",
        "get",
        "/api/v1/organisations",
        (NONE, OWN, OTHER_COUNTRY),
        lambda w, c, s: Call(
            "get", "/api/v1/organisations", query={} if s == NONE else {"country": _country(s)}
        ),
        by_role(
            network_admin=200,
            service=200,
            country_editor={NONE: 200, OWN: 200, OTHER_COUNTRY: 403},
        ),
    ),
    Rule(
        "registry",
        "post",
        "/api/v1/organisations",
        (OWN, OTHER_COUNTRY),
        lambda w, c, s: Call("post", "/api/v1/organisations", json=_organisation_body(s)),
        by_role(network_admin=201, country_editor={OWN: 201, OTHER_COUNTRY: 403}),
    ),
    Rule(
        "registry",
        "get",
        "/api/v1/organisations/{organisation_id}",
        (OWN, OTHER_ORG, OTHER_COUNTRY),
        lambda w, c, s: Call("get", f"/api/v1/organisations/{_target_org(w, c, s).id}"),
        by_role(
            network_admin=200,
            service=200,
            country_editor={OWN: 200, OTHER_ORG: 200, OTHER_COUNTRY: 403},
            organisation_member={OWN: 200, OTHER_ORG: 403, OTHER_COUNTRY: 403},
        ),
    ),
    Rule(
        "registry",
        "patch",
        "/api/v1/organisations/{organisation_id}",
        (OWN, OTHER_ORG, OTHER_COUNTRY),
        # Its own name again: a patch that changes nothing, so the world stays as it is.
        lambda w, c, s: Call("patch", _org_path(w, c, s), json={"name": _target_org(w, c, s).name}),
        _ORG_CHANGE,
    ),
    Rule(
        "registry",
        "delete",
        "/api/v1/organisations/{organisation_id}",
        _FRESH_SCOPES,
        lambda w, c, s: Call("delete", f"/api/v1/organisations/{_fresh_org(w, c, s)}"),
        by_role(network_admin=204, country_editor={OTHER_ORG: 204, OTHER_COUNTRY: 403}),
    ),
    Rule(
        "registry",
        "post",
        "/api/v1/organisations/{organisation_id}/deactivate",
        _FRESH_SCOPES,
        lambda w, c, s: Call("post", f"/api/v1/organisations/{_fresh_org(w, c, s)}/deactivate"),
        _ORG_ADMINISTER,
    ),
    Rule(
        "registry",
        "post",
        "/api/v1/organisations/{organisation_id}/activate",
        _FRESH_SCOPES,
        lambda w, c, s: Call("post", f"/api/v1/organisations/{_fresh_org(w, c, s)}/activate"),
        _ORG_ADMINISTER,
    ),
    Rule(
        "registry",
        "get",
        "/api/v1/organisations/{organisation_id}/preferences",
        (OWN, OTHER_ORG, OTHER_COUNTRY),
        lambda w, c, s: Call("get", _org_path(w, c, s, "/preferences")),
        _ORG_CHANGE,
    ),
    Rule(
        "registry",
        "put",
        "/api/v1/organisations/{organisation_id}/preferences",
        (OWN, OTHER_ORG, OTHER_COUNTRY),
        # Everything wanted: what every organisation of the world has already.
        lambda w, c, s: Call("put", _org_path(w, c, s, "/preferences"), json={"all": True}),
        _ORG_CHANGE,
    ),
    Rule(
        "registry",
        "get",
        "/api/v1/organisations/{organisation_id}/consents",
        (OWN, OTHER_ORG, OTHER_COUNTRY),
        lambda w, c, s: Call("get", _org_path(w, c, s, "/consents")),
        by_role(
            network_admin=200,
            service=200,
            country_editor={OWN: 200, OTHER_ORG: 200, OTHER_COUNTRY: 403},
            organisation_member={OWN: 200, OTHER_ORG: 403, OTHER_COUNTRY: 403},
        ),
    ),
    Rule(
        "registry",
        "get",
        "/api/v1/topics",
        (NONE,),
        lambda w, c, s: Call("get", "/api/v1/topics"),
        everyone(200),
    ),
    Rule(
        "registry",
        "post",
        "/api/v1/auth/token",
        (NONE,),
        lambda w, c, s: Call(
            "post",
            "/api/v1/auth/token",
            form={
                "grant_type": "client_credentials",
                "client_id": w.api_keys[SERVICE].key.id,
                "client_secret": w.api_keys[SERVICE].secret,
            },
        ),
        everyone(200),
    ),
    Rule(
        "registry",
        "get",
        "/api/v1/auth/me",
        (NONE,),
        lambda w, c, s: Call("get", "/api/v1/auth/me"),
        by_role(default=200),
    ),
    Rule(
        "registry",
        "get",
        "/.well-known/jwks.json",
        (NONE,),
        lambda w, c, s: Call("get", "/.well-known/jwks.json"),
        everyone(200),
    ),
    Rule(
        "registry",
        "get",
        "/api/v1/api-keys",
        (NONE,),
        lambda w, c, s: Call("get", "/api/v1/api-keys"),
        by_role(network_admin=200),
    ),
    Rule(
        "registry",
        "post",
        "/api/v1/api-keys",
        (NONE,),
        lambda w, c, s: Call(
            "post",
            "/api/v1/api-keys",
            json={"name": "x", "role": "organisation_member", "organisation_id": w.own_org(c).id},
        ),
        by_role(network_admin=201),
    ),
    Rule(
        "registry",
        "delete",
        "/api/v1/api-keys/{key_id}",
        (NONE,),
        lambda w, c, s: Call("delete", f"/api/v1/api-keys/{_fresh_key(w)}"),
        by_role(network_admin=204),
    ),
    Rule(
        "registry",
        "post",
        "/api/v1/users",
        (NONE,),
        lambda w, c, s: Call(
            "post",
            "/api/v1/users",
            json={
                "email": f"person-{uuid.uuid4().hex[:10]}@example.org",
                "name": "A person",
                "role": "organisation_member",
                "organisation_id": w.orgs["ba_cso"].id,
            },
        ),
        by_role(network_admin=201),
    ),
    Rule(
        "registry",
        "post",
        "/api/v1/users/password",
        (NONE,),
        lambda w, c, s: Call(
            "post",
            "/api/v1/users/password",
            json={"token": "not.an.invitation", "password": "a long enough password"},
        ),
        everyone(400),
    ),
    Rule(
        "registry",
        "post",
        "/api/v1/signups",
        (NONE,),
        lambda w, c, s: Call(
            "post",
            "/api/v1/signups",
            json={
                **{k: v for k, v in _organisation_body(OWN).items() if k != "kind"},
                "kind": "cso",
                "consent_text_version": "signup-2026-11",
                "consent": True,
            },
        ),
        everyone(202),
    ),
    Rule(
        "registry",
        "post",
        "/api/v1/organisations/import",
        (OWN, OTHER_COUNTRY),
        # Rows of another country are skipped with their reason (200), never imported.
        lambda w, c, s: Call(
            "post",
            "/api/v1/organisations/import",
            raw=(
                "name;email;country\r\nMatrix CSO;"
                f"{_organisation_body(s)['email']};{_country(s)}\r\n"
            ).encode(),
            content_type="text/csv",
        ),
        by_role(network_admin=200, country_editor=200),
    ),
    # ---- events ----------------------------------------------------------------------------
    Rule(
        "events",
        "get",
        "/api/v1/events",
        (NONE,),
        lambda w, c, s: Call("get", "/api/v1/events", query={"country": "BA"}),
        everyone(200),
    ),
    Rule(
        "events",
        "post",
        "/api/v1/events",
        (OWN, OTHER_ORG, OWN_ORG_ABROAD, OTHER_COUNTRY),
        lambda w, c, s: Call("post", "/api/v1/events", json=_event_body(w, c, s)),
        by_role(
            # The admin may publish anywhere, but the organiser must belong to the country.
            network_admin={OWN: 201, OTHER_ORG: 201, OWN_ORG_ABROAD: 422, OTHER_COUNTRY: 201},
            country_editor={OWN: 201, OTHER_ORG: 403, OWN_ORG_ABROAD: 403, OTHER_COUNTRY: 403},
        ),
    ),
    Rule(
        "events",
        "get",
        "/api/v1/events/{event_id}",
        _EVENT_SCOPES,
        lambda w, c, s: Call("get", f"/api/v1/events/{_draft(w, c, s)}"),
        by_role(
            default=404,
            anonymous=404,
            network_admin=200,
            country_editor={OWN: 200, OTHER_ORG: 200, OTHER_COUNTRY: 404},
        ),
        impossible=_MEMBER_ORGANISES_NOTHING,
    ),
    Rule(
        "events",
        "post",
        "/api/v1/events/{event_id}/publish",
        _EVENT_SCOPES,
        lambda w, c, s: Call("post", f"/api/v1/events/{_draft(w, c, s)}/publish"),
        by_role(
            network_admin=200,
            country_editor={OWN: 200, OTHER_ORG: 403, OTHER_COUNTRY: 404},
        ),
        impossible=_MEMBER_ORGANISES_NOTHING,
    ),
    # Members answer for their own organisation; editors for any of their country's.
    Rule(
        "events",
        "post",
        "/api/v1/events/{event_id}/registrations",
        _REGISTRATION_SCOPES,
        lambda w, c, s: Call(
            "post",
            f"/api/v1/events/{_open_event(w, _country(s))}/registrations",
            json={"organisation_id": _target_org(w, c, s).id, "seats": 1},
        ),
        by_role(
            network_admin=201,
            country_editor={OWN: 201, OTHER_ORG: 201, OTHER_COUNTRY: 403},
            organisation_member={OWN: 201, OTHER_ORG: 403, OTHER_COUNTRY: 403},
        ),
    ),
    Rule(
        "events",
        "patch",
        "/api/v1/events/{event_id}",
        _EVENT_SCOPES,
        lambda w, c, s: Call(
            "patch", f"/api/v1/events/{_draft(w, c, s)}", json={"title": "Edited draft"}
        ),
        by_role(
            network_admin=200,
            country_editor={OWN: 200, OTHER_ORG: 403, OTHER_COUNTRY: 404},
        ),
        impossible=_MEMBER_ORGANISES_NOTHING,
    ),
    Rule(
        "events",
        "post",
        "/api/v1/events/{event_id}/cancel",
        _EVENT_SCOPES,
        lambda w, c, s: Call(
            "post", f"/api/v1/events/{_published(w, c, s)}/cancel", json={"reason": "Matrix"}
        ),
        by_role(
            network_admin=200,
            # A published event is public: another country's editor sees it, may not cancel it.
            country_editor={OWN: 200, OTHER_ORG: 403, OTHER_COUNTRY: 403},
        ),
        impossible=_MEMBER_ORGANISES_NOTHING,
    ),
    Rule(
        "events",
        "get",
        "/api/v1/events/{event_id}/registrations",
        (OWN, OTHER_COUNTRY),
        lambda w, c, s: Call("get", f"/api/v1/events/{_open_event(w, _country(s))}/registrations"),
        # A member sees its own organisation's registrations only (of any event).
        by_role(
            network_admin=200,
            country_editor={OWN: 200, OTHER_COUNTRY: 403},
            organisation_member=200,
        ),
    ),
    Rule(
        "events",
        "delete",
        "/api/v1/events/{event_id}/registrations/{registration_id}",
        _REGISTRATION_SCOPES,
        lambda w, c, s: Call("delete", _registration(w, c, s)),
        by_role(
            network_admin=204,
            country_editor={OWN: 204, OTHER_ORG: 204, OTHER_COUNTRY: 403},
            organisation_member={OWN: 204, OTHER_ORG: 403, OTHER_COUNTRY: 403},
        ),
    ),
    Rule(
        "events",
        "post",
        "/api/v1/events/{event_id}/registrations/{registration_id}/claim",
        _REGISTRATION_SCOPES,
        lambda w, c, s: Call("post", _registration(w, c, s, offered=True) + "/claim"),
        by_role(
            network_admin=200,
            country_editor={OWN: 200, OTHER_ORG: 200, OTHER_COUNTRY: 403},
            organisation_member={OWN: 200, OTHER_ORG: 403, OTHER_COUNTRY: 403},
        ),
    ),
    Rule(
        "events",
        "get",
        "/api/v1/events.ics",
        (NONE,),
        lambda w, c, s: Call("get", "/api/v1/events.ics", query={"country": "BA"}),
        everyone(200),
    ),
    Rule(
        "events",
        "get",
        "/events",
        (NONE,),
        lambda w, c, s: Call("get", "/events", query={"country": "BA", "lang": "bs"}),
        everyone(200),
    ),
    # ---- every service ---------------------------------------------------------------------
    *(
        Rule(
            service,
            "get",
            "/api/v1/audit",
            (NONE,),
            lambda w, c, s: Call("get", "/api/v1/audit"),
            by_role(network_admin=200),
        )
        for service in ("registry", "events", "notify")
    ),
    # ---- notify ----------------------------------------------------------------------------
    Rule(
        "notify",
        "get",
        "/api/v1/deliveries",
        (NONE, OWN, OTHER_COUNTRY),
        lambda w, c, s: Call(
            "get",
            "/api/v1/deliveries",
            query={} if s == NONE else {"event_id": "ev-rs" if s == OTHER_COUNTRY else "ev-ba"},
        ),
        by_role(network_admin=200, country_editor=200),
    ),
    Rule(
        "notify",
        "get",
        "/api/v1/deliveries/summary",
        (OWN, OTHER_COUNTRY),
        lambda w, c, s: Call(
            "get",
            "/api/v1/deliveries/summary",
            query={"event_id": "ev-rs" if s == OTHER_COUNTRY else "ev-ba"},
        ),
        by_role(network_admin=200, country_editor={OWN: 200, OTHER_COUNTRY: 404}),
    ),
    Rule(
        "notify",
        "get",
        "/api/v1/events/{event_id}/report",
        (OWN, OTHER_COUNTRY),
        lambda w, c, s: Call(
            "get", f"/api/v1/events/{'ev-rs' if s == OTHER_COUNTRY else 'ev-ba'}/report"
        ),
        by_role(network_admin=200, country_editor={OWN: 200, OTHER_COUNTRY: 404}),
    ),
    Rule(
        "notify",
        "get",
        "/api/v1/events/{event_id}/audience",
        (OWN, OTHER_COUNTRY),
        lambda w, c, s: Call("get", f"/api/v1/events/{w.draft(_country(s), _rc(s, w))}/audience"),
        by_role(network_admin=200, country_editor={OWN: 200, OTHER_COUNTRY: 404}),
    ),
    # The suppression list and bounces are the network's, not a country's: network admins only.
    Rule(
        "notify",
        "get",
        "/api/v1/suppressions",
        (NONE,),
        lambda w, c, s: Call("get", "/api/v1/suppressions"),
        by_role(network_admin=200),
    ),
    Rule(
        "notify",
        "post",
        "/api/v1/suppressions",
        (NONE,),
        lambda w, c, s: Call(
            "post", "/api/v1/suppressions", json={"email": f"m-{uuid.uuid4().hex}@example.org"}
        ),
        by_role(network_admin=201),
    ),
    Rule(
        "notify",
        "delete",
        "/api/v1/suppressions/{email}",
        (NONE,),
        lambda w, c, s: Call("delete", f"/api/v1/suppressions/{_suppressed(w)}"),
        by_role(network_admin=204),
    ),
    Rule(
        "notify",
        "post",
        "/api/v1/bounces",
        (NONE,),
        lambda w, c, s: Call("post", "/api/v1/bounces", raw=_BOUNCE),
        by_role(network_admin=200),
    ),
    # Webhooks: a country editor subscribes to its own countries and sees only those
    # subscriptions (another country's is answered as if it did not exist).
    Rule(
        "notify",
        "get",
        "/api/v1/webhooks",
        (NONE,),
        lambda w, c, s: Call("get", "/api/v1/webhooks"),
        by_role(network_admin=200, country_editor=200),
    ),
    Rule(
        "notify",
        "post",
        "/api/v1/webhooks",
        (OWN, OTHER_COUNTRY),
        lambda w, c, s: Call("post", "/api/v1/webhooks", json=_webhook_body(s)),
        by_role(network_admin=201, country_editor={OWN: 201, OTHER_COUNTRY: 403}),
    ),
    *(
        Rule(
            "notify",
            method,
            f"/api/v1/webhooks/{{subscription_id}}{tail}",
            (OWN, OTHER_COUNTRY),
            _on_webhook(method, tail),
            by_role(network_admin=ok, country_editor={OWN: ok, OTHER_COUNTRY: 404}),
        )
        for method, tail, ok in (
            ("get", "", 200),
            ("delete", "", 204),
            ("post", "/enable", 200),
            ("get", "/deliveries", 200),
        )
    ),
)


def _cells() -> list[Any]:
    cells = []
    for rule in RULES:
        for caller in CALLERS:
            for scope in rule.scopes:
                if (caller, scope) in rule.impossible:
                    continue
                label = f"{rule.service} {rule.method.upper()} {rule.path} {caller} {scope}"
                cells.append(pytest.param(rule, caller, scope, id=label))
    return cells


def send(world: World, service: str, call: Call, headers: dict[str, str]) -> Any:
    """Send ``call`` to ``service``'s app with ``headers``."""
    client = world.clients[service]
    if call.raw is not None:
        headers = {**headers, "Content-Type": call.content_type}
    return client.open(
        call.path,
        method=call.method.upper(),
        json=call.json,
        query_string=call.query,
        data=call.form if call.raw is None else call.raw,
        headers=headers,
    )


@pytest.mark.parametrize(("rule", "caller", "scope"), _cells())
def test_cell(world: World, rule: Rule, caller: str, scope: str) -> None:
    call = rule.request(world, caller, scope)
    response = send(world, rule.service, call, world.headers(caller))

    assert response.status_code == rule.expect(caller, scope), response.get_data(as_text=True)


def _documented_operations(world: World) -> set[tuple[str, str, str]]:
    found = set()
    for service, client in world.clients.items():
        paths = client.get("/openapi.json").get_json()["paths"]
        for path, item in paths.items():
            found |= {(service, method, path) for method in item if method != "parameters"}
    return found


def test_every_operation_has_a_row(world: World) -> None:
    documented = _documented_operations(world)
    ruled = {(r.service, r.method, r.path) for r in RULES}

    assert documented - ruled == set(), "operations without a row in RULES"
    assert ruled - documented == set(), "rows of RULES for operations that do not exist"


def test_every_operation_documents_who_may_call_it(world: World) -> None:
    for service, client in world.clients.items():
        for path, item in client.get("/openapi.json").get_json()["paths"].items():
            for method, operation in item.items():
                if method == "parameters":
                    continue
                label = f"{service} {method} {path}"
                assert "x-roles" in operation, label
                if operation["x-roles"] != ["public"]:
                    assert operation["security"] == [{"bearerAuth": []}], label
                    assert {"401", "403"} <= set(operation["responses"]), label


class TestCountryScope:
    def test_a_ba_editor_lists_no_organisation_of_another_country(self, world: World) -> None:
        response = world.clients["registry"].get(
            "/api/v1/organisations", headers=world.headers(COUNTRY_EDITOR)
        )

        countries = {o["country"] for o in response.get_json()["items"]}
        assert countries == {"BA"}

    def test_a_ba_editor_reads_no_delivery_of_another_country(self, world: World) -> None:
        response = world.clients["notify"].get(
            "/api/v1/deliveries", headers=world.headers(COUNTRY_EDITOR)
        )

        body = response.get_json()
        assert {d["country"] for d in body["items"]} == {"BA"}
        assert body["total"] == 2

    def test_a_ba_editor_asking_for_rs_deliveries_gets_none(self, world: World) -> None:
        response = world.clients["notify"].get(
            "/api/v1/deliveries",
            query_string={"event_id": "ev-rs"},
            headers=world.headers(COUNTRY_EDITOR),
        )

        assert response.get_json()["items"] == []

    def test_the_editor_token_says_who_it_is(self, world: World) -> None:
        me = world.clients["registry"].get("/api/v1/auth/me", headers=world.headers(COUNTRY_EDITOR))

        assert me.get_json() | {"subject": "-"} == {
            "subject": "-",
            "role": COUNTRY_EDITOR,
            "organisation_id": world.orgs["ba_rc"].id,
            "countries": ["BA"],
            "via": "token",
        }
