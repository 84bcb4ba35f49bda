"""The registry's composition root: settings in, wired engine and session factory out."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tacso_registry import DEFAULT_PORT, SERVICE, accounts, signing
from tacso_registry.models import outbox
from tacso_shared.auth import Authentication
from tacso_shared.config import CommonSettings
from tacso_shared.db import make_engine, make_session_factory, migrate, transaction
from tacso_shared.identity import Caller, KeySet, TokenVerifier, audience_of
from tacso_shared.links import LinkSigner
from tacso_shared.outbox import OutboxRelay

MIGRATIONS = Path(__file__).parent / "migrations"
#: Seconds registry trusts its own key set read from the database (a retired key stops soon).
OWN_KEYS_SECONDS = 10.0


@dataclass(frozen=True)
class RegistrySettings:
    """The registry's settings: the common ones (it needs nothing else)."""

    common: CommonSettings


@dataclass
class Registry:
    """Everything the registry's entrypoints need, built once per process."""

    settings: RegistrySettings
    engine: Engine
    sessions: sessionmaker[Session]

    def authentication(self) -> Authentication:
        """How registry recognises callers: the admin key, its own tokens, API keys.

        Its own tokens are checked against the keys in its database (no HTTP to itself), read
        again at most every :data:`OWN_KEYS_SECONDS` and on an unknown ``kid``.
        """

        def fetch() -> dict[str, object]:
            with self.sessions() as session:
                return signing.jwks_document(session)

        verifier = TokenVerifier(
            KeySet(fetch, ttl=OWN_KEYS_SECONDS, min_refresh_interval=1.0), audience_of(SERVICE)
        )

        def verify_api_key(secret: str) -> Caller | None:
            with transaction(self.sessions) as session:
                return accounts.api_key_caller(session, secret)

        return Authentication(self.settings.common.admin_api_key, verifier.verify, verify_api_key)

    def link_signer(self) -> LinkSigner:
        """Signs and checks the links of sign-up confirmations (``LINK_SIGNING_KEYS``)."""
        return LinkSigner(self.settings.common.link_signing_keys)

    @property
    def public_url(self) -> str:
        """Where people reach registry's pages (``REGISTRY_PUBLIC_URL``)."""
        return self.settings.common.registry_public_url

    def relay(self) -> OutboxRelay:
        """The outbox relay for this database."""
        return OutboxRelay.from_settings(self.engine, outbox, self.settings.common)


def load_settings(env: Mapping[str, str] | None = None) -> RegistrySettings:
    """The registry's settings from ``env`` (default: the environment)."""
    env = os.environ if env is None else env
    return RegistrySettings(common=CommonSettings.load(SERVICE, DEFAULT_PORT, env))


def bootstrap(settings: RegistrySettings | None = None) -> Registry:
    """Wire the registry from ``settings`` (default: the environment)."""
    settings = settings or load_settings()
    engine = make_engine(settings.common.database_url)
    return Registry(settings, engine, make_session_factory(engine))


def apply_migrations(settings: CommonSettings) -> None:
    """Bring the registry's database to the newest schema, with a key to sign tokens."""
    migrate(MIGRATIONS, settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with transaction(make_session_factory(engine)) as session:
            signing.ensure_signing_key(session)
    finally:
        engine.dispose()
