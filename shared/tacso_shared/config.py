"""Configuration read from environment variables, with documented defaults.

Nothing here is read at import time: each service calls ``load_*`` from its composition root.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tacso_shared.links import DEVELOPMENT_LINK_KEY, link_keys

DEFAULT_AMQP_URL = "amqp://guest:guest@localhost:5672//"


class ConfigError(RuntimeError):
    """A required setting is missing or malformed."""


def env_str(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    """Return the variable ``name``, or ``default``; raise if neither is there."""
    value = env.get(name)
    if value is None or value == "":
        if default is None:
            raise ConfigError(f"environment variable {name} is required")
        return default
    return value


def env_int(env: Mapping[str, str], name: str, default: int) -> int:
    """Return the variable ``name`` as an integer, or ``default``."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"environment variable {name} must be an integer, got {raw!r}") from exc


def env_float(env: Mapping[str, str], name: str, default: float) -> float:
    """Return the variable ``name`` as a float, or ``default``."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"environment variable {name} must be a number, got {raw!r}") from exc


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """Return the variable ``name`` as a boolean (1/true/yes/on), or ``default``."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def default_sqlite_url(service: str, env: Mapping[str, str]) -> str:
    """A SQLite file under ``$VAR_DIR`` (default ``./var``) for ``service``."""
    var_dir = Path(env_str(env, "VAR_DIR", "var")).resolve()
    return f"sqlite:///{var_dir / f'{service}.sqlite3'}"


#: The largest request body an API reads (``MAX_CONTENT_LENGTH``): our largest valid request, an
#: event with a 20,000-character description, is far below it.
DEFAULT_MAX_CONTENT_LENGTH = 1024 * 1024


@dataclass(frozen=True)
class RateLimitSettings:
    """Where the counters are and how much each kind of request may do."""

    storage_url: str = "memory://"
    credentials: str = "10/minute"
    public: str = "600/minute"
    writes: str = "300/minute"
    #: Self-registrations per client address (``RATE_LIMIT_SIGNUP``).
    signup: str = "5/hour"
    namespace: str = "tacso"
    enabled: bool = True

    @classmethod
    def load(cls, env: Mapping[str, str]) -> RateLimitSettings:
        """The ``RATE_LIMIT_*`` variables of ``env``."""
        return cls(
            storage_url=env_str(env, "RATE_LIMIT_STORAGE_URL", cls.storage_url),
            credentials=env_str(env, "RATE_LIMIT_CREDENTIALS", cls.credentials),
            public=env_str(env, "RATE_LIMIT_PUBLIC", cls.public),
            writes=env_str(env, "RATE_LIMIT_WRITES", cls.writes),
            signup=env_str(env, "RATE_LIMIT_SIGNUP", cls.signup),
            namespace=env_str(env, "RATE_LIMIT_NAMESPACE", cls.namespace),
            enabled=env_bool(env, "RATE_LIMITS", True),
        )


@dataclass(frozen=True)
class CommonSettings:
    """Settings every service reads: database, broker, key, and how its API is served."""

    service: str
    database_url: str
    amqp_url: str
    #: The legacy shared key, a network admin credential; ``None`` (unset) turns it off.
    admin_api_key: str | None
    public_base_url: str
    port: int
    relay_batch_size: int
    relay_poll_interval: float
    web_concurrency: int
    web_threads: int
    bind_host: str
    access_log: str | None
    log_level: str
    max_content_length: int
    #: ``LOG_FORMAT``: ``json`` (one object per line) or ``text`` (``make up``).
    log_format: str = "json"
    #: ``METRICS_PORT``: where a worker or relay serves its Prometheus metrics (0: nowhere).
    metrics_port: int = 0
    #: Where registry publishes its token signing keys (``JWKS_URL``).
    jwks_url: str = "http://localhost:5001/.well-known/jwks.json"
    #: Seconds a fetched key set is trusted before it is fetched again (``JWKS_CACHE_SECONDS``).
    jwks_cache_seconds: float = 300.0
    #: The API key this service calls registry with (``SERVICE_API_KEY``; role ``service``).
    service_api_key: str | None = None
    #: Lifetime of the tokens registry issues (``TOKEN_TTL_SECONDS``).
    token_ttl_seconds: int = 900
    #: Days the audit log keeps an entry (``AUDIT_RETENTION_DAYS``; 0 keeps them all).
    audit_retention_days: int = 365
    #: Where rate limits count and how much they allow (``RATE_LIMIT_*``).
    rate_limits: RateLimitSettings = RateLimitSettings()
    #: ``LINK_SIGNING_KEYS``: the keys of personal links in mail (first signs, all accepted).
    link_signing_keys: tuple[str, ...] = (DEVELOPMENT_LINK_KEY,)
    #: ``REGISTRY_PUBLIC_URL``: where people reach registry's pages (preferences, sign-up).
    registry_public_url: str = "http://localhost:5001"

    @property
    def service_credential(self) -> str | None:
        """What this service calls registry with: its service key, else the admin key."""
        return self.service_api_key or self.admin_api_key

    @classmethod
    def load(
        cls, service: str, default_port: int, env: Mapping[str, str] | None = None
    ) -> CommonSettings:
        """Read the common settings of ``service`` from ``env`` (default: ``os.environ``).

        ``ADMIN_API_KEY`` has no default: a process started without it accepts no admin key at
        all (callers then need tokens or API keys), and never a key that everyone knows (``make
        up`` sets a development key itself, and says so).
        """
        env = os.environ if env is None else env
        prefix = service.upper()
        registry_url = env_str(env, "REGISTRY_URL", "http://localhost:5001").rstrip("/")
        max_content_length = env_int(env, "MAX_CONTENT_LENGTH", DEFAULT_MAX_CONTENT_LENGTH)
        if max_content_length < 1:
            raise ConfigError(f"MAX_CONTENT_LENGTH must be at least 1, got {max_content_length}")
        log_format = env_str(env, "LOG_FORMAT", "json").lower()
        if log_format not in ("json", "text"):
            raise ConfigError(f"LOG_FORMAT must be json or text, got {log_format!r}")
        return cls(
            service=service,
            database_url=env_str(env, f"{prefix}_DATABASE_URL", default_sqlite_url(service, env)),
            amqp_url=env_str(env, "AMQP_URL", DEFAULT_AMQP_URL),
            admin_api_key=env.get("ADMIN_API_KEY") or None,
            public_base_url=env_str(env, "PUBLIC_BASE_URL", "http://localhost:5002").rstrip("/"),
            port=env_int(env, f"{prefix}_PORT", default_port),
            relay_batch_size=env_int(env, "OUTBOX_BATCH_SIZE", 500),
            relay_poll_interval=env_float(env, "OUTBOX_POLL_INTERVAL", 0.2),
            web_concurrency=env_int(env, "WEB_CONCURRENCY", 2),
            web_threads=env_int(env, "WEB_THREADS", 4),
            # All interfaces by default: in a container the published port must reach it
            # (``make up`` binds 127.0.0.1 instead).
            bind_host=env_str(env, "BIND_HOST", "0.0.0.0"),  # noqa: S104
            access_log=env.get("ACCESS_LOG") or None,
            log_level=env_str(env, "LOG_LEVEL", "INFO").upper(),
            max_content_length=max_content_length,
            log_format=log_format,
            metrics_port=env_int(env, "METRICS_PORT", 0),
            jwks_url=env_str(env, "JWKS_URL", f"{registry_url}/.well-known/jwks.json"),
            jwks_cache_seconds=env_float(env, "JWKS_CACHE_SECONDS", 300.0),
            service_api_key=env.get("SERVICE_API_KEY") or None,
            token_ttl_seconds=env_int(env, "TOKEN_TTL_SECONDS", 900),
            audit_retention_days=env_int(env, "AUDIT_RETENTION_DAYS", 365),
            rate_limits=RateLimitSettings.load(env),
            link_signing_keys=link_keys(env),
            registry_public_url=env_str(env, "REGISTRY_PUBLIC_URL", registry_url).rstrip("/"),
        )


class ServiceSettings(Protocol):
    """What every service's settings object has: the common settings, composed."""

    @property
    def common(self) -> CommonSettings:
        """The settings every service reads."""
        ...
