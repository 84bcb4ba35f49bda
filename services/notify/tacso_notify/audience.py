"""Who should hear about an event: organisations streamed page by page from the registry."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

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


@dataclass(frozen=True)
class Organisation:
    """An organisation looked up by id: where to write, and whether it accepts bulk mail."""

    recipient: Recipient
    mailing_consent: bool


class OrganisationLookup(Protocol):
    """Finds organisations by id (those registry no longer knows are left out)."""

    def lookup(self, organisation_ids: Sequence[str]) -> list[Organisation]: ...


class OrganisationFinder(Protocol):
    """Finds one organisation by id: the recipient of mail about its own registration."""

    def organisation(self, organisation_id: str) -> Recipient | None:
        """The organisation as a recipient, or None if the registry does not know it (any more).

        Raises :class:`AudienceUnavailable` when the registry cannot be asked now.
        """
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

    def _organisation(self, organisation_id: str) -> dict[str, Any] | None:
        """``GET /api/v1/organisations/<id>`` (the service role may read any organisation); None
        if registry does not know it (any more: erased); AudienceUnavailable if it cannot say."""
        url = f"{self.base_url}/api/v1/organisations/{quote(organisation_id, safe='')}"
        try:
            response = self._http.get(url, timeout=self.timeout)
        except requests.RequestException as exc:
            raise AudienceUnavailable(f"registry unreachable: {exc}") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise AudienceUnavailable(
                f"registry answered {response.status_code}: {response.text[:200]}"
            )
        try:
            body: dict[str, Any] = response.json()
            _recipient(body)
        except (ValueError, KeyError, TypeError) as exc:
            reason = f"registry answered 200 without an organisation: {exc}"
            raise AudienceUnavailable(reason) from exc
        if body.get("erased"):
            # An erased organisation stays as a tombstone in registry: nobody to write to.
            return None
        return body

    def organisation(self, organisation_id: str) -> Recipient | None:
        """One organisation as a recipient (with its country), or None if registry lacks it."""
        body = self._organisation(organisation_id)
        if body is None:
            return None
        recipient = _recipient(body)
        country = body.get("country")
        return Recipient(
            recipient.organisation_id,
            recipient.name,
            recipient.email,
            recipient.language,
            country if isinstance(country, str) else None,
        )

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

    def lookup(self, organisation_ids: Sequence[str]) -> list[Organisation]:
        """Each organisation by id, on one kept-alive connection; those registry no longer has
        (erased) are left out; any other failure raises :class:`AudienceUnavailable`."""
        found = []
        for organisation_id in organisation_ids:
            body = self._organisation(organisation_id)
            if body is not None:
                found.append(Organisation(_recipient(body), bool(body.get("mailing_consent"))))
        return found

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


def organisations(
    directory: RegistryDirectory, country: str, kind: str, topics: Sequence[str]
) -> Iterator[dict[str, Any]]:
    """Every ``kind`` organisation of ``country`` (any of ``topics``), as registry shows it,
    whatever its consent: the audience preview counts who is left out, and why."""
    after: str | None = None
    while True:
        params: dict[str, Any] = {
            "country": country,
            "kind": kind,
            "page_size": directory.page_size,
        }
        if topics:
            params["topic"] = list(topics)
        if after is not None:
            params["after"] = after
        body = directory._get(params)
        yield from body["items"]
        after = body.get("next_after") or None
        if after is None:
            return


def _recipient(organisation: dict[str, Any]) -> Recipient:
    return Recipient(
        organisation_id=organisation["id"],
        name=organisation["name"],
        email=organisation["email"],
        language=organisation.get("language", "en"),
    )
