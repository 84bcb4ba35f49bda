"""Who should hear about an event: organisations streamed page by page from the registry."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import requests

from tacso_notify.domain import Recipient
from tacso_shared.envelope import PoisonMessage

DEFAULT_PAGE_SIZE = 500
FIRST_PAGE_SIZE = 50


class AudienceUnavailable(Exception):
    """The registry could not be asked now (down, slow, misconfigured): try again later."""


class Directory(Protocol):
    """Lists the organisations an event's mail goes to."""

    def pages(
        self,
        country: str,
        kind: str,
        topics: Sequence[str],
        *,
        mail_kind: str | None = None,
        event_topics: Sequence[str] = (),
    ) -> Iterator[list[Recipient]]:
        """Yield pages of ``kind`` organisations in ``country`` (any of ``topics``; all if none)
        that want ``mail_kind`` about an event on ``event_topics``."""
        ...

    def page(
        self,
        country: str,
        kind: str,
        topics: Sequence[str],
        after: str | None,
        size: int,
        *,
        mail_kind: str | None = None,
        event_topics: Sequence[str] = (),
    ) -> tuple[list[Recipient], str | None]:
        """One page of that audience after the keyset cursor ``after``, and the next cursor."""
        ...


class RegistryDirectory:
    """Reads the audience from registry's ``GET /api/v1/organisations`` with keyset paging.

    Asking registry at send time (rather than keeping a replica) means an organisation registered a
    moment before the event was published is never missed; a registry outage raises
    :class:`AudienceUnavailable`, and the message is retried later.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        page_size: int = DEFAULT_PAGE_SIZE,
        timeout: tuple[float, float] = (2.0, 10.0),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size
        self.timeout = timeout
        self._http = requests.Session()
        if api_key:
            # A key with the role ``service`` (SERVICE_API_KEY), else the legacy admin key.
            self._http.headers["Authorization"] = f"Bearer {api_key}"

    def _get(self, params: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/api/v1/organisations"
        try:
            response = self._http.get(url, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise AudienceUnavailable(f"registry unreachable: {exc}") from exc
        if response.status_code in (400, 422):
            # The registry understood and refused the question: asking again cannot help.
            raise PoisonMessage(
                f"registry refused the audience query ({response.status_code}): "
                f"{response.text[:200]}"
            )
        if response.status_code != 200:
            raise AudienceUnavailable(
                f"registry answered {response.status_code}: {response.text[:200]}"
            )
        try:
            body: dict[str, Any] = response.json()
            body["items"]
        except (ValueError, KeyError, TypeError) as exc:
            raise AudienceUnavailable(f"registry answered 200 without a page: {exc}") from exc
        return body

    def page(
        self,
        country: str,
        kind: str,
        topics: Sequence[str],
        after: str | None,
        size: int,
        *,
        mail_kind: str | None = None,
        event_topics: Sequence[str] = (),
    ) -> tuple[list[Recipient], str | None]:
        params: dict[str, Any] = {
            "country": country,
            "kind": kind,
            "mailing_consent": "true",
            "page_size": min(size, self.page_size),
        }
        if mail_kind is not None:
            # registry leaves out the inactive, those without a basis and those who opted out
            # (of everything, this kind, or the event's topics) as it reads the page.
            params["mail_kind"] = mail_kind
            if event_topics:
                params["event_topic"] = list(event_topics)
        if topics:
            params["topic"] = list(topics)
        if after is not None:
            params["after"] = after
        body = self._get(params)
        return [_recipient(o) for o in body["items"]], body.get("next_after") or None

    def pages(
        self,
        country: str,
        kind: str,
        topics: Sequence[str],
        *,
        mail_kind: str | None = None,
        event_topics: Sequence[str] = (),
    ) -> Iterator[list[Recipient]]:
        # A small first page gets the first mail out sooner; then full pages.
        size, after = FIRST_PAGE_SIZE, None
        while True:
            page, after = self.page(
                country, kind, topics, after, size, mail_kind=mail_kind, event_topics=event_topics
            )
            if page:
                yield page
            if after is None:
                return
            size = self.page_size


def _recipient(organisation: dict[str, Any]) -> Recipient:
    return Recipient(
        organisation_id=organisation["id"],
        name=organisation["name"],
        email=organisation["email"],
        language=organisation.get("language", "en"),
    )
