"""The client: one ``requests`` session for the three APIs, one small method per operation.

Each method is declared with :func:`operation` (HTTP method and path template of its service's
OpenAPI document); :func:`operations` lists them all, and a test compares that list with the
live documents, both ways. Adding an operation is one method::

    @operation("POST", "/api/v1/events/{event_id}/cancel")
    def cancel_event(self, op: Endpoint, event_id: str) -> Event:
        return cast(Event, self._json(op, {"event_id": event_id}))

Transport: a 429 or 503 is retried with exponential backoff, honouring ``Retry-After``
(urllib3's ``Retry`` on a mounted ``HTTPAdapter``); a refusal that remains raises an
:class:`~tacso_client.errors.ApiError` subclass with the API's message and field errors.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Concatenate, NamedTuple, ParamSpec, TypeVar, cast
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.util.retry import Retry

from tacso_client.auth import TokenGrant
from tacso_client.errors import error_for
from tacso_client.types import (
    ApiKey,
    ApiKeyCreated,
    AudiencePreview,
    AuditEntry,
    BounceReport,
    Caller,
    Consent,
    Delivery,
    DeliverySummary,
    Event,
    EventCreate,
    EventReport,
    ImportReport,
    InvitedUser,
    Jwks,
    Organisation,
    OrganisationCreate,
    OrganisationPatch,
    Preferences,
    Registration,
    SignupAccepted,
    SignupCreate,
    Suppression,
    Token,
    Topic,
    Webhook,
    WebhookCreated,
    WebhookDelivery,
)

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="ServiceApi")

#: The media type of a JSON merge patch (RFC 7396).
MERGE_PATCH = "application/merge-patch+json"

#: Statuses retried (with backoff, after ``Retry-After`` when the server sends one).
RETRY_STATUSES = frozenset({429, 503})


class Endpoint(NamedTuple):
    """One operation of a service's OpenAPI document."""

    method: str
    path: str


def operation(
    method: str, path: str
) -> Callable[[Callable[Concatenate[S, Endpoint, P], R]], Callable[Concatenate[S, P], R]]:
    """Declare a client method as the operation ``method path`` of its class's service.

    The method receives the :class:`Endpoint` after ``self``; callers do not pass it.
    """
    endpoint = Endpoint(method.upper(), path)

    def declare(func: Callable[Concatenate[S, Endpoint, P], R]) -> Callable[Concatenate[S, P], R]:
        @functools.wraps(func)
        def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
            return func(self, endpoint, *args, **kwargs)

        call.__operation__ = endpoint  # type: ignore[attr-defined]
        return call

    return declare


def _clean(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _flag(value: bool | None) -> str | None:
    """A boolean query parameter as the APIs read it (``true``/``false``)."""
    return None if value is None else str(value).lower()


def _merge_patch(patch: Mapping[str, Any], if_match: str | None = None) -> dict[str, Any]:
    """The ``requests`` arguments of a JSON merge patch, conditional on ``if_match``."""
    headers = {"Content-Type": MERGE_PATCH}
    if if_match is not None:
        headers["If-Match"] = _entity_tag(if_match)
    return {"data": json.dumps(patch).encode(), "headers": headers}


def _entity_tag(tag: str) -> str:
    """``tag`` quoted as an entity tag (an ETag header's value is used as it is)."""
    return tag if tag.startswith(('"', "W/", "*")) else f'"{tag}"'


class ServiceApi:
    """The operations of one service, at its base URL, through the client's session."""

    service: ClassVar[str]

    def __init__(self, client: TacsoClient, base_url: str) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")

    def url(self, op: Endpoint, path_params: Mapping[str, str] | None = None) -> str:
        """The URL of ``op`` with its path parameters filled in (each quoted)."""
        values = {k: quote(str(v), safe="") for k, v in (path_params or {}).items()}
        return self.base_url + op.path.format(**values)

    def _request(
        self,
        op: Endpoint,
        path_params: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        return self.client.send(op.method, self.url(op, path_params), **kwargs)

    def _json(
        self, op: Endpoint, path_params: Mapping[str, str] | None = None, **kwargs: Any
    ) -> Any:
        return self._request(op, path_params, **kwargs).json()

    def _pages(
        self,
        op: Endpoint,
        params: Mapping[str, Any],
        page_size: int | None,
        path_params: Mapping[str, str] | None = None,
    ) -> Iterator[Any]:
        """Every item of a paged list, fetching page after page as the iteration goes.

        Follows, in this order: a ``Link: <...>; rel="next"`` header, a keyset cursor
        (``next_after``), else ``page`` + 1 until ``total`` items were seen or a page is empty.
        """
        first = self.url(op, path_params)
        url: str | None = first
        query: dict[str, Any] | None = _clean({**params, "page_size": page_size})
        while url is not None:
            response = self.client.send(op.method, url, params=query)
            body = response.json()
            items = body["items"]
            yield from items
            url = None
            if "next" in response.links:
                url, query = response.links["next"]["url"], None
            elif "next_after" in body:
                if body["next_after"]:
                    url = first
                    query = {**(query or {}), "after": body["next_after"]}
                    query.pop("page", None)
            elif items and body["page"] * body["page_size"] < body["total"]:
                url, query = first, {**(query or {}), "page": body["page"] + 1}

    @operation("GET", "/api/v1/audit")
    def audit(
        self,
        op: Endpoint,
        *,
        actor: str | None = None,
        action: str | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[AuditEntry]:
        """The service's audit log (network admins), newest first, all pages."""
        params = {
            "actor": actor,
            "action": action,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "since": since,
            "until": until,
        }
        return self._pages(op, params, page_size)


class RegistryApi(ServiceApi):
    """Organisations, topics, credentials (registry)."""

    service = "registry"

    @operation("GET", "/api/v1/organisations")
    def organisations(
        self,
        op: Endpoint,
        *,
        country: str | None = None,
        kind: str | None = None,
        topic: str | None = None,
        mailing_consent: bool | None = None,
        page_size: int | None = None,
    ) -> Iterator[Organisation]:
        """Organisations matching the filters, all pages (keyset paging)."""
        params = {
            "country": country,
            "kind": kind,
            "topic": topic,
            "mailing_consent": _flag(mailing_consent),
        }
        return self._pages(op, params, page_size)

    @operation("POST", "/api/v1/organisations")
    def create_organisation(self, op: Endpoint, organisation: OrganisationCreate) -> Organisation:
        """Register an organisation."""
        return cast(Organisation, self._json(op, json=organisation))

    @operation("GET", "/api/v1/organisations/{organisation_id}")
    def organisation(self, op: Endpoint, organisation_id: str) -> Organisation:
        """One organisation."""
        return cast(Organisation, self._json(op, {"organisation_id": organisation_id}))

    @operation("PATCH", "/api/v1/organisations/{organisation_id}")
    def update_organisation(
        self, op: Endpoint, organisation_id: str, patch: OrganisationPatch
    ) -> Organisation:
        """Change an organisation (JSON merge patch: only the keys given change)."""
        path = {"organisation_id": organisation_id}
        return cast(Organisation, self._json(op, path, **_merge_patch(patch)))

    @operation("DELETE", "/api/v1/organisations/{organisation_id}")
    def erase_organisation(self, op: Endpoint, organisation_id: str) -> None:
        """Erase an organisation (its personal data; a 410 afterwards)."""
        self._request(op, {"organisation_id": organisation_id})

    @operation("POST", "/api/v1/organisations/{organisation_id}/deactivate")
    def deactivate_organisation(self, op: Endpoint, organisation_id: str) -> Organisation:
        """Stop mailing an organisation (it stays registered)."""
        return cast(Organisation, self._json(op, {"organisation_id": organisation_id}))

    @operation("POST", "/api/v1/organisations/{organisation_id}/activate")
    def activate_organisation(self, op: Endpoint, organisation_id: str) -> Organisation:
        """Mail a deactivated organisation again."""
        return cast(Organisation, self._json(op, {"organisation_id": organisation_id}))

    @operation("GET", "/api/v1/organisations/{organisation_id}/preferences")
    def preferences(self, op: Endpoint, organisation_id: str) -> Preferences:
        """An organisation's mailing preferences."""
        return cast(Preferences, self._json(op, {"organisation_id": organisation_id}))

    @operation("PUT", "/api/v1/organisations/{organisation_id}/preferences")
    def set_preferences(
        self, op: Endpoint, organisation_id: str, preferences: Preferences
    ) -> Preferences:
        """Replace an organisation's mailing preferences."""
        path = {"organisation_id": organisation_id}
        return cast(Preferences, self._json(op, path, json=preferences))

    @operation("GET", "/api/v1/organisations/{organisation_id}/consents")
    def consents(self, op: Endpoint, organisation_id: str) -> list[Consent]:
        """An organisation's consent records (given and withdrawn)."""
        return cast(list[Consent], self._json(op, {"organisation_id": organisation_id}))

    @operation("POST", "/api/v1/organisations/import")
    def import_organisations(
        self,
        op: Endpoint,
        csv: bytes | str,
        *,
        dry_run: bool = False,
        existing: str | None = None,
    ) -> ImportReport:
        """Import organisations from a CSV file; ``existing``: ``skip`` (the API's default) or
        ``update`` rows whose address is known. ``dry_run``: report, write nothing."""
        body = csv.encode() if isinstance(csv, str) else csv
        params = _clean({"dry_run": _flag(dry_run), "existing": existing})
        headers = {"Content-Type": "text/csv"}
        return cast(ImportReport, self._json(op, data=body, params=params, headers=headers))

    @operation("POST", "/api/v1/signups")
    def sign_up(self, op: Endpoint, signup: SignupCreate) -> SignupAccepted:
        """Ask to join (public, double opt-in): the answer is the same for a known address."""
        return cast(SignupAccepted, self._json(op, json=signup))

    @operation("GET", "/api/v1/topics")
    def topics(self, op: Endpoint) -> list[Topic]:
        """The topics of the network (public)."""
        return cast(list[Topic], self._json(op))

    @operation("POST", "/api/v1/auth/token")
    def token(
        self,
        op: Endpoint,
        *,
        grant_type: str,
        client_id: str | None = None,
        client_secret: str | None = None,
        username: str | None = None,
        password: str | None = None,
        audience: str | None = None,
    ) -> Token:
        """A token (OAuth 2.0). To authenticate the client itself, pass ``ClientCredentials``
        or ``PasswordGrant`` as its ``auth`` instead: they cache and renew tokens."""
        form = {
            "grant_type": grant_type,
            "client_id": client_id,
            "client_secret": client_secret,
            "username": username,
            "password": password,
            "audience": audience,
        }
        return cast(Token, self._json(op, data=_clean(form), auth=_NoAuth()))

    @operation("GET", "/api/v1/auth/me")
    def me(self, op: Endpoint) -> Caller:
        """Who the client's credential is: subject, role, organisation, countries."""
        return cast(Caller, self._json(op))

    @operation("GET", "/api/v1/api-keys")
    def api_keys(self, op: Endpoint) -> list[ApiKey]:
        """Every API key (network admins); never their secrets."""
        return cast(list[ApiKey], self._json(op))

    @operation("POST", "/api/v1/api-keys")
    def create_api_key(
        self, op: Endpoint, name: str, role: str, organisation_id: str | None = None
    ) -> ApiKeyCreated:
        """A new API key; its ``secret`` is shown this once."""
        body = {"name": name, "role": role, "organisation_id": organisation_id}
        return cast(ApiKeyCreated, self._json(op, json=body))

    @operation("DELETE", "/api/v1/api-keys/{key_id}")
    def revoke_api_key(self, op: Endpoint, key_id: str) -> None:
        """Revoke an API key."""
        self._request(op, {"key_id": key_id})

    @operation("POST", "/api/v1/users")
    def invite_user(
        self, op: Endpoint, email: str, name: str, role: str, organisation_id: str | None = None
    ) -> InvitedUser:
        """Invite a person; the ``invitation_token`` lets them set a password."""
        body = {"email": email, "name": name, "role": role, "organisation_id": organisation_id}
        return cast(InvitedUser, self._json(op, json=body))

    @operation("POST", "/api/v1/users/password")
    def set_password(self, op: Endpoint, token: str, password: str) -> None:
        """Set a password with an invitation token (public)."""
        self._request(op, json={"token": token, "password": password}, auth=_NoAuth())

    @operation("GET", "/.well-known/jwks.json")
    def jwks(self, op: Endpoint) -> Jwks:
        """Registry's public token keys."""
        return cast(Jwks, self._json(op))


class EventsApi(ServiceApi):
    """Events: create, publish, list (events)."""

    service = "events"

    @operation("GET", "/api/v1/events")
    def events(
        self,
        op: Endpoint,
        *,
        country: str | None = None,
        topic: str | None = None,
        type: str | None = None,
        starts_from: str | None = None,
        starts_to: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[Event]:
        """Published events (public), all pages; ``starts_from``/``starts_to`` are the API's
        ``from``/``to``."""
        params = {
            "country": country,
            "topic": topic,
            "type": type,
            "from": starts_from,
            "to": starts_to,
        }
        return self._pages(op, params, page_size)

    @operation("POST", "/api/v1/events")
    def create_event(self, op: Endpoint, event: EventCreate) -> Event:
        """Create an event: published at once unless ``"status": "draft"``."""
        return cast(Event, self._json(op, json=event))

    @operation("GET", "/api/v1/events/{event_id}")
    def event(self, op: Endpoint, event_id: str) -> Event:
        """One event."""
        return cast(Event, self._json(op, {"event_id": event_id}))

    @operation("POST", "/api/v1/events/{event_id}/publish")
    def publish_event(self, op: Endpoint, event_id: str) -> Event:
        """Publish a draft."""
        return cast(Event, self._json(op, {"event_id": event_id}))

    @operation("GET", "/api/v1/events/{event_id}")
    def event_etag(self, op: Endpoint, event_id: str) -> str:
        """The event's current entity tag, for ``if_match`` of :meth:`update_event` and
        :meth:`cancel_event`."""
        return self._request(op, {"event_id": event_id}).headers["ETag"]

    @operation("PATCH", "/api/v1/events/{event_id}")
    def update_event(
        self,
        op: Endpoint,
        event_id: str,
        patch: Mapping[str, Any],
        *,
        if_match: str | None = None,
    ) -> Event:
        """Edit an event with a JSON merge patch of the create fields (``None`` removes an
        optional value). ``if_match``: only if the event is still at this ETag (else 412)."""
        path = {"event_id": event_id}
        return cast(Event, self._json(op, path, **_merge_patch(patch, if_match)))

    @operation("POST", "/api/v1/events/{event_id}/cancel")
    def cancel_event(
        self, op: Endpoint, event_id: str, reason: str, *, if_match: str | None = None
    ) -> Event:
        """Cancel a published event; ``reason`` is shown to everyone who was told."""
        headers = {} if if_match is None else {"If-Match": _entity_tag(if_match)}
        path = {"event_id": event_id}
        return cast(Event, self._json(op, path, json={"reason": reason}, headers=headers))

    @operation("POST", "/api/v1/events/{event_id}/registrations")
    def register(
        self,
        op: Endpoint,
        event_id: str,
        organisation_id: str,
        *,
        seats: int | None = None,
        note: str | None = None,
    ) -> Registration:
        """Register an organisation for an event: confirmed, or waitlisted when it is full."""
        body = _clean({"organisation_id": organisation_id, "seats": seats, "note": note})
        return cast(Registration, self._json(op, {"event_id": event_id}, json=body))

    @operation("GET", "/api/v1/events/{event_id}/registrations")
    def registrations(
        self,
        op: Endpoint,
        event_id: str,
        *,
        status: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[Registration]:
        """An event's registrations in arrival order, all pages (an organisation member: its
        own only)."""
        return self._pages(op, {"status": status}, page_size, {"event_id": event_id})

    @operation("DELETE", "/api/v1/events/{event_id}/registrations/{registration_id}")
    def cancel_registration(self, op: Endpoint, event_id: str, registration_id: str) -> None:
        """Withdraw a registration (its seats go to the waitlist)."""
        self._request(op, {"event_id": event_id, "registration_id": registration_id})

    @operation("POST", "/api/v1/events/{event_id}/registrations/{registration_id}/claim")
    def claim_registration(self, op: Endpoint, event_id: str, registration_id: str) -> Registration:
        """Claim an offered seat before the offer expires."""
        path = {"event_id": event_id, "registration_id": registration_id}
        return cast(Registration, self._json(op, path))

    @operation("GET", "/api/v1/events.ics")
    def calendar(
        self,
        op: Endpoint,
        *,
        country: str | None = None,
        topics: Sequence[str] = (),
        type: str | None = None,
    ) -> str:
        """The iCalendar feed of upcoming (and recently cancelled) events (public)."""
        params = {"country": country, "topic": list(topics) or None, "type": type}
        return self._request(op, params=_clean(params)).text

    @operation("GET", "/events")
    def listing_page(
        self,
        op: Endpoint,
        *,
        country: str | None = None,
        topics: Sequence[str] = (),
        type: str | None = None,
        lang: str | None = None,
    ) -> str:
        """The public HTML list of upcoming events (in ``lang``, else the API's default)."""
        params = {"country": country, "topic": list(topics) or None, "type": type, "lang": lang}
        return self._request(op, params=_clean(params)).text


class NotifyApi(ServiceApi):
    """Invitations, press notices, the delivery ledger, suppressions (notify)."""

    service = "notify"

    @operation("GET", "/api/v1/deliveries")
    def deliveries(
        self,
        op: Endpoint,
        *,
        event_id: str | None = None,
        organisation_id: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        page_size: int | None = 1000,
    ) -> Iterator[Delivery]:
        """Ledger rows matching the filters, all pages."""
        params = {
            "event_id": event_id,
            "organisation_id": organisation_id,
            "kind": kind,
            "status": status,
        }
        return self._pages(op, params, page_size)

    @operation("GET", "/api/v1/deliveries/summary")
    def delivery_summary(self, op: Endpoint, event_id: str) -> DeliverySummary:
        """Counts of an event's deliveries by kind and status."""
        return cast(DeliverySummary, self._json(op, params={"event_id": event_id}))

    @operation("GET", "/api/v1/suppressions")
    def suppressions(
        self, op: Endpoint, *, email: str | None = None, page_size: int | None = None
    ) -> Iterator[Suppression]:
        """Suppressed addresses, all pages."""
        return self._pages(op, {"email": email}, page_size)

    @operation("POST", "/api/v1/suppressions")
    def suppress(self, op: Endpoint, email: str, reason: str | None = None) -> Suppression:
        """Stop all mail to an address."""
        return cast(Suppression, self._json(op, json=_clean({"email": email, "reason": reason})))

    @operation("DELETE", "/api/v1/suppressions/{email}")
    def lift_suppression(self, op: Endpoint, email: str) -> None:
        """Mail an address again."""
        self._request(op, {"email": email})

    @operation("POST", "/api/v1/bounces")
    def ingest_bounce(self, op: Endpoint, message: bytes) -> BounceReport:
        """Read a bounce (a raw RFC 5322 message); permanent failures are suppressed."""
        headers = {"Content-Type": "message/rfc822"}
        return cast(BounceReport, self._json(op, data=message, headers=headers))

    @operation("GET", "/api/v1/events/{event_id}/report")
    def event_report(self, op: Endpoint, event_id: str) -> EventReport:
        """An event's deliveries by kind, status and reason, and mail accepted over time."""
        return cast(EventReport, self._json(op, {"event_id": event_id}))

    @operation("GET", "/api/v1/events/{event_id}/report")
    def event_report_csv(self, op: Endpoint, event_id: str) -> str:
        """The same report as CSV (UTF-8 with a BOM, for spreadsheets)."""
        response = self._request(op, {"event_id": event_id}, params={"format": "csv"})
        return response.content.decode("utf-8-sig")

    @operation("GET", "/api/v1/events/{event_id}/audience")
    def audience(self, op: Endpoint, event_id: str) -> AudiencePreview:
        """Who would get the event's invitation and press notice if it were published now."""
        return cast(AudiencePreview, self._json(op, {"event_id": event_id}))

    @operation("GET", "/api/v1/webhooks")
    def webhooks(self, op: Endpoint) -> list[Webhook]:
        """Webhook subscriptions the caller may see (never their secrets)."""
        return cast(list[Webhook], self._json(op)["items"])

    @operation("POST", "/api/v1/webhooks")
    def create_webhook(
        self,
        op: Endpoint,
        url: str,
        event_types: Sequence[str],
        *,
        countries: Sequence[str] | None = None,
        description: str | None = None,
    ) -> WebhookCreated:
        """Subscribe ``url`` to event types; the signing ``secret`` is shown this once."""
        body = _clean(
            {
                "url": url,
                "event_types": list(event_types),
                "countries": None if countries is None else list(countries),
                "description": description,
            }
        )
        return cast(WebhookCreated, self._json(op, json=body))

    @operation("GET", "/api/v1/webhooks/{subscription_id}")
    def webhook(self, op: Endpoint, subscription_id: str) -> Webhook:
        """One webhook subscription."""
        return cast(Webhook, self._json(op, {"subscription_id": subscription_id}))

    @operation("DELETE", "/api/v1/webhooks/{subscription_id}")
    def delete_webhook(self, op: Endpoint, subscription_id: str) -> None:
        """Unsubscribe (the subscription and its delivery log are removed)."""
        self._request(op, {"subscription_id": subscription_id})

    @operation("POST", "/api/v1/webhooks/{subscription_id}/enable")
    def enable_webhook(self, op: Endpoint, subscription_id: str) -> Webhook:
        """Enable a subscription notify disabled."""
        return cast(Webhook, self._json(op, {"subscription_id": subscription_id}))

    @operation("GET", "/api/v1/webhooks/{subscription_id}/deliveries")
    def webhook_deliveries(
        self, op: Endpoint, subscription_id: str, *, page_size: int | None = None
    ) -> Iterator[WebhookDelivery]:
        """A subscription's delivery log, newest first, all pages."""
        return self._pages(op, {}, page_size, {"subscription_id": subscription_id})


class _NoAuth(AuthBase):
    """No credential on this request (public operations that take credentials in the body)."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.pop("Authorization", None)
        return request


class TacsoClient:
    """Registry, events and notify. ``auth``: an :class:`~tacso_client.auth.ApiKey`,
    :class:`~tacso_client.auth.ClientCredentials`, :class:`~tacso_client.auth.PasswordGrant`,
    or None for the public operations alone.

    ``retries``: how many times a 429/503 (or a connection that failed before the request was
    sent) is tried again; the waits grow as ``backoff * 2**n`` up to ``backoff_max`` seconds,
    or follow the server's ``Retry-After``.
    """

    def __init__(
        self,
        registry_url: str = "http://localhost:5001",
        events_url: str = "http://localhost:5002",
        notify_url: str = "http://localhost:5003",
        auth: AuthBase | None = None,
        *,
        timeout: float = 30,
        retries: int = 5,
        backoff: float = 0.5,
        backoff_max: float = 30,
        user_agent: str = "tacso-client/0.1",
    ) -> None:
        self.timeout = timeout
        self.http = requests.Session()
        self.http.headers["User-Agent"] = user_agent
        self.http.auth = auth
        adapter = HTTPAdapter(
            max_retries=retry_policy(retries, backoff, backoff_max), pool_maxsize=16
        )
        sessions = [self.http]
        if isinstance(auth, TokenGrant):
            sessions.append(auth.session)
        for session in sessions:
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self.registry = RegistryApi(self, registry_url)
        self.events = EventsApi(self, events_url)
        self.notify = NotifyApi(self, notify_url)

    def send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """Send one request (retried by the adapter); raise the API's error for a refusal.

        A token refused with 401 is renewed and the request sent once more (a key rotated
        on the server, a clock apart).
        """
        kwargs.setdefault("timeout", self.timeout)
        response = self.http.request(method, url, **kwargs)
        auth = self.http.auth
        if response.status_code == 401 and isinstance(auth, TokenGrant) and "auth" not in kwargs:
            auth.invalidate()
            response = self.http.request(method, url, **kwargs)
        if response.status_code >= 400:
            raise error_for(response)
        return response

    def close(self) -> None:
        """Close the connections."""
        self.http.close()

    def __enter__(self) -> TacsoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def retry_policy(retries: int, backoff: float, backoff_max: float) -> Retry:
    """urllib3's Retry: 429 and 503 on any method (the request was not processed), after
    ``Retry-After`` when given; connection errors before sending; one read error (a pooled
    keep-alive connection the server closed as the request went out)."""
    return Retry(
        total=retries,
        connect=retries,
        read=1,
        status=retries,
        other=0,
        allowed_methods=None,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff,
        backoff_max=backoff_max,
        respect_retry_after_header=True,
        raise_on_status=False,
    )


SERVICES: tuple[type[ServiceApi], ...] = (RegistryApi, EventsApi, NotifyApi)


def operations() -> dict[str, tuple[str, str, str]]:
    """Every operation the client covers: ``"registry.organisations"`` -> (service, method,
    path template), as in the services' OpenAPI documents."""
    table: dict[str, tuple[str, str, str]] = {}
    for cls in SERVICES:
        for name in dir(cls):
            endpoint = getattr(getattr(cls, name), "__operation__", None)
            if isinstance(endpoint, Endpoint):
                table[f"{cls.service}.{name}"] = (cls.service, endpoint.method, endpoint.path)
    return table
