"""How the events service asks the registry about an organiser (over its documented HTTP API)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 5.0
CONNECT_RETRIES = 2


class RegistryUnavailable(Exception):
    """The registry could not be asked, or gave an answer that cannot be used."""


@dataclass(frozen=True)
class Organisation:
    """What the events service needs to know about an organisation of the registry."""

    id: str
    name: str
    kind: str
    country: str
    email: str | None


class RegistryClient(Protocol):
    """Looks organisations up in the registry (a fake in unit tests, HTTP otherwise)."""

    def get_organisation(self, organisation_id: str) -> Organisation | None:
        """The organisation with this id, ``None`` if the registry has none.

        Raises :class:`RegistryUnavailable` when the registry cannot answer.
        """
        ...


class HttpRegistryClient:
    """A :class:`RegistryClient` over ``GET /api/v1/organisations/<id>`` of the registry."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        connect_retries: int = CONNECT_RETRIES,
        session: requests.Session | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout = (connect_timeout, read_timeout)
        self._session = session or requests.Session()
        if api_key:
            self._session.headers["Authorization"] = f"Bearer {api_key}"
        self._session.headers["Accept"] = "application/json"
        # Only failures to connect are retried: the request never reached the registry then.
        retry = Retry(
            total=connect_retries,
            connect=connect_retries,
            read=0,
            status=0,
            other=0,
            redirect=0,
            backoff_factor=0.1,
            allowed_methods=frozenset({"GET"}),
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def close(self) -> None:
        """Release the pooled connections."""
        self._session.close()

    def get_organisation(self, organisation_id: str) -> Organisation | None:
        """The organisation with this id, ``None`` on 404; :class:`RegistryUnavailable` else."""
        url = f"{self._base_url}/api/v1/organisations/{quote(organisation_id, safe='')}"
        try:
            response = self._session.get(url, timeout=self._timeout)
        except requests.RequestException as exc:
            log.warning("registry unreachable at %s: %s", self._base_url, exc)
            raise RegistryUnavailable(f"the registry at {self._base_url} is unreachable") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            log.warning("registry answered %d for %s", response.status_code, url)
            raise RegistryUnavailable(f"the registry answered HTTP {response.status_code}")
        try:
            body: Any = response.json()
            return Organisation(
                id=str(body["id"]),
                name=str(body["name"]),
                kind=str(body["kind"]),
                country=str(body["country"]),
                email=None if body.get("email") is None else str(body["email"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RegistryUnavailable("the registry's answer could not be read") from exc
