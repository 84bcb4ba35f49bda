"""Credentials: an API key sent as it is, or OAuth 2.0 tokens from registry, cached and renewed.

Registry's ``POST /api/v1/auth/token`` issues tokens (valid for all three services, 15 minutes by
default) for the client credentials grant (an API key's id and secret: machine clients) and the
password grant (people). :class:`ClientCredentials` and :class:`PasswordGrant` fetch one when
first needed, reuse it, and fetch the next one shortly before it expires.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import requests
from requests.auth import AuthBase

from tacso_client.errors import error_for

#: A token is renewed when less than this many seconds of it are left (or a tenth of its life).
REFRESH_MARGIN = 60.0


class ApiKey(AuthBase):
    """An API key (or the legacy admin key), sent as ``Authorization: Bearer <key>``."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.key}"
        return request


class TokenGrant(AuthBase):
    """A token from registry's token endpoint, cached until shortly before it expires."""

    def __init__(
        self,
        registry_url: str,
        form: dict[str, str],
        session: requests.Session | None = None,
        timeout: float = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url = registry_url.rstrip("/") + "/api/v1/auth/token"
        self.form = form
        self.session = session or requests.Session()
        self.timeout = timeout
        self.clock = clock
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = threading.Lock()
        #: How many tokens were fetched (tests and logs).
        self.fetched = 0

    def token(self) -> str:
        """The current token: the cached one, or a new one when it is near its expiry."""
        with self._lock:
            if self._token is None or self.clock() >= self._renew_at:
                self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self) -> None:
        """Forget the cached token (the next request fetches a new one)."""
        with self._lock:
            self._token = None

    def _fetch(self) -> None:
        started = self.clock()
        response = self.session.post(self.token_url, data=self.form, timeout=self.timeout)
        if response.status_code != 200:
            raise error_for(response)
        body = response.json()
        lifetime = float(body["expires_in"])
        self._token = str(body["access_token"])
        self._renew_at = started + lifetime - min(REFRESH_MARGIN, lifetime / 10)
        self.fetched += 1

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request


class ClientCredentials(TokenGrant):
    """The client credentials grant: an API key's id and secret (machine clients)."""

    def __init__(
        self,
        registry_url: str,
        client_id: str,
        client_secret: str,
        session: requests.Session | None = None,
        timeout: float = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        }
        super().__init__(registry_url, form, session, timeout, clock)


class PasswordGrant(TokenGrant):
    """The password grant: a person's email and password."""

    def __init__(
        self,
        registry_url: str,
        username: str,
        password: str,
        session: requests.Session | None = None,
        timeout: float = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        form = {"grant_type": "password", "username": username, "password": password}
        super().__init__(registry_url, form, session, timeout, clock)
