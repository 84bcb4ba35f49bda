"""The one HTTP client of the three APIs for the e2e, fault and compose suites.

Talks to registry, events and notify over real HTTP, as an operator's client would, and fails
loudly (with the response body) when an API refuses something a test takes for granted.
"""

from __future__ import annotations

import concurrent.futures
import uuid
from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from support.waiting import wait_until


class ApiClient:
    """Registry, events and notify at ``base_urls`` (service name -> ``http://host:port``)."""

    def __init__(self, base_urls: Mapping[str, str], admin_key: str, timeout: float = 10) -> None:
        self.base_urls = dict(base_urls)
        self.timeout = timeout
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {admin_key}"
        # gunicorn closes an idle keep-alive connection after a few seconds; a request sent on
        # it at that moment meets "Remote end closed connection without response" before the
        # server read it. Such a request is sent again on a fresh connection (POSTs too: it was
        # never received).
        retry = Retry(
            total=3, connect=3, read=2, status=0, allowed_methods=None, backoff_factor=0.1
        )
        self.http.mount("http://", HTTPAdapter(max_retries=retry))

    def url(self, service: str, path: str) -> str:
        """The full URL of ``path`` on ``service``."""
        return f"{self.base_urls[service]}{path}"

    def post(self, service: str, path: str, body: dict[str, Any]) -> requests.Response:
        """POST JSON with the admin key."""
        return self.http.post(self.url(service, path), json=body, timeout=self.timeout)

    def get(self, service: str, path: str, **params: Any) -> requests.Response:
        """GET with query parameters and the admin key."""
        return self.http.get(self.url(service, path), params=params, timeout=self.timeout)

    # ---- registry --------------------------------------------------------------------------
    def token(self, role: str = "network_admin", organisation_id: str | None = None) -> str:
        """A token of ``role``: an API key created with the admin key, exchanged for a token."""
        key = self.post(
            "registry",
            "/api/v1/api-keys",
            {"name": f"test {role}", "role": role, "organisation_id": organisation_id},
        )
        assert key.status_code == 201, key.text
        response = requests.post(
            self.url("registry", "/api/v1/auth/token"),
            data={
                "grant_type": "client_credentials",
                "client_id": key.json()["id"],
                "client_secret": key.json()["secret"],
            },
            timeout=self.timeout,
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def register(self, **org: Any) -> dict[str, Any]:
        """Register an organisation; fail loudly if registry refuses."""
        response = self.post("registry", "/api/v1/organisations", org)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def register_many(
        self, n: int, kind: str, country: str, topics: list[str], tag: str
    ) -> list[dict[str, Any]]:
        """Register ``n`` organisations with unique emails, eight requests at a time."""

        def register(i: int) -> dict[str, Any]:
            return self.register(
                name=f"{tag} {i}",
                kind=kind,
                country=country,
                email=f"{tag}-{i}-{uuid.uuid4().hex[:8]}@example.org",
                language="en",
                topics=topics,
            )

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(register, range(n)))

    def organisation(self, country: str, kind: str) -> dict[str, Any]:
        """The first organisation of a kind in a country (e.g. the seeded Resource Centre)."""
        response = self.get("registry", "/api/v1/organisations", country=country, kind=kind)
        assert response.status_code == 200, response.text
        item: dict[str, Any] = response.json()["items"][0]
        return item

    # ---- events ----------------------------------------------------------------------------
    def publish_event(self, country: str, topics: list[str], **overrides: Any) -> dict[str, Any]:
        """Publish a workshop in ``country`` by its seeded organiser; return the event's JSON."""
        organiser_kind = "tacso_office" if country == "AL" else "resource_centre"
        organiser = self.organisation(country, organiser_kind)
        body: dict[str, Any] = {
            "title": f"Test workshop {uuid.uuid4().hex[:10]}",
            "type": "workshop",
            "country": country,
            "topics": topics,
            "starts_at": "2026-12-15T09:00:00+00:00",
            "ends_at": "2026-12-15T15:30:00+00:00",
            "venue": {"name": "Hotel Europe", "city": "Sarajevo"},
            "organiser_id": organiser["id"],
            **overrides,
        }
        response = self.post("events", "/api/v1/events", body)
        assert response.status_code == 201, response.text
        event: dict[str, Any] = response.json()
        return event

    # ---- notify ----------------------------------------------------------------------------
    def deliveries(self, event_id: str, **params: Any) -> list[dict[str, Any]]:
        """Every ledger row of one event (all pages), filtered by ``params`` (kind, status)."""
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            response = self.get(
                "notify",
                "/api/v1/deliveries",
                event_id=event_id,
                page=page,
                page_size=1000,
                **params,
            )
            assert response.status_code == 200, response.text
            body = response.json()
            items.extend(body["items"])
            if len(items) >= body["total"] or not body["items"]:
                return items
            page += 1

    def wait_all_sent(
        self, event_id: str, kind: str, expected: int, timeout: float = 120
    ) -> list[dict[str, Any]]:
        """Wait until the ledger holds ``expected`` rows of ``kind``, all ``sent``; return them."""

        def all_sent() -> list[dict[str, Any]] | None:
            rows = self.deliveries(event_id, kind=kind)
            done = len(rows) == expected and all(r["status"] == "sent" for r in rows)
            return rows if done else None

        rows = wait_until(
            all_sent,
            timeout=timeout,
            interval=0.5,
            message=f"{expected} {kind} sent for {event_id}",
        )
        assert rows is not None
        return rows
