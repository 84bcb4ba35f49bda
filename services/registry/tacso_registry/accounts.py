"""Accounts and API keys: who may act in the network, and how their credentials are checked.

Passwords are hashed with Argon2id and never leave this module; an API key's secret is random
(256 bits), shown once and stored as a SHA-256 hash (a slow hash adds nothing to a secret that
cannot be guessed, and would slow every request that presents it). Plain functions over a
database session (no Flask).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from tacso_registry import signing
from tacso_registry.models import Account, ApiKey, Organisation, outbox
from tacso_shared import outbox as outbox_ops
from tacso_shared.contracts import UserInvited, envelope_of
from tacso_shared.identity import (
    COUNTRY_EDITOR,
    ISSUER,
    ORGANISATION_MEMBER,
    ROLES,
    Caller,
    countries_for,
)
from tacso_shared.vocabulary import ORGANISER_KINDS

#: The ``aud`` of invitation tokens: only the set-password endpoint accepts them.
INVITATION_AUDIENCE = "tacso-registry-invitation"
INVITATION_DAYS = 7
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
#: An API key's last use is written at most this often (not on every request).
LAST_USED_PRECISION = timedelta(minutes=1)
KEY_PREFIX = "tacso"

_hasher = PasswordHasher()  # Argon2id with the library's recommended cost
#: Checked against when the email is unknown, so that a sign-in takes as long either way.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class AccountRefused(Exception):
    """A request about accounts or keys that cannot be met; ``field`` and ``reason`` say why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


class DuplicateAccount(Exception):
    """Another account already uses this email."""


class BadCredentials(Exception):
    """The email and password, or the client id and secret, do not match an active account."""


class KeyNotFound(Exception):
    """No API key has this id."""


@dataclass(frozen=True)
class CreatedKey:
    """A new API key and its secret (shown once, never stored)."""

    key: ApiKey
    secret: str


def _organisation_for_role(
    session: Session, role: str, organisation_id: str | None
) -> Organisation | None:
    """The organisation a holder of ``role`` belongs to; :class:`AccountRefused` if unfit."""
    if role not in ROLES:
        raise AccountRefused("role", f"Must be one of: {', '.join(ROLES)}.")
    organisation = None
    if organisation_id is not None:
        organisation = session.get(Organisation, organisation_id)
        if organisation is None:
            raise AccountRefused("organisation_id", "No such organisation.")
    if role in (COUNTRY_EDITOR, ORGANISATION_MEMBER) and organisation is None:
        raise AccountRefused("organisation_id", f"A {role} belongs to an organisation.")
    if role == COUNTRY_EDITOR and organisation and organisation.kind not in ORGANISER_KINDS:
        raise AccountRefused(
            "organisation_id", "Country editors work for a resource centre or TACSO office."
        )
    return organisation


def caller_for(subject: str, role: str, organisation: Organisation | None, via: str) -> Caller:
    """The caller an account or key stands for."""
    return Caller(
        subject=subject,
        role=role,
        organisation_id=organisation.id if organisation else None,
        countries=countries_for(role, organisation.country if organisation else None),
        via=via,
    )


# ---- people ---------------------------------------------------------------------------------
def create_account(
    session: Session,
    email: str,
    name: str,
    role: str,
    organisation_id: str | None,
    password: str | None = None,
) -> Account:
    """Add an account; without ``password`` it waits for its invitation to be used."""
    _organisation_for_role(session, role, organisation_id)
    email = email.strip().lower()
    if session.scalar(sa.select(Account.id).where(Account.email == email)):
        raise DuplicateAccount(email)
    now = datetime.now(UTC)
    account = Account(
        id=str(uuid.uuid4()),
        email=email,
        name=name.strip(),
        role=role,
        organisation_id=organisation_id,
        password_hash=None,
        disabled=False,
        created_at=now,
        password_set_at=None,
    )
    if password is not None:
        _set_password(account, password, now)
    session.add(account)
    session.flush()
    return account


def _check_password_rules(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise AccountRefused(
            "password",
            f"Must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters long.",
        )


def _set_password(account: Account, password: str, now: datetime) -> None:
    _check_password_rules(password)
    account.password_hash = _hasher.hash(password)
    account.password_set_at = now


def _password_version(account: Account) -> str:
    # Changes whenever the password does: a used invitation cannot be used again.
    return hashlib.sha256((account.password_hash or "unset").encode()).hexdigest()[:16]


def invitation_token(session: Session, account: Account) -> str:
    """A signed, single-use token that lets the account's owner set a password (7 days)."""
    now = datetime.now(UTC)
    return signing.sign(
        session,
        {
            "iss": ISSUER,
            "aud": INVITATION_AUDIENCE,
            "sub": account.id,
            "pwv": _password_version(account),
            "iat": now,
            "exp": now + timedelta(days=INVITATION_DAYS),
        },
    )


#: The country an invitation of a person without an organisation travels under (routing only).
NO_ORGANISATION_COUNTRY = "BA"


def set_password_url(base_url: str, token: str) -> str:
    """The page an invitation mail links to."""
    return f"{base_url.rstrip('/')}/users/set-password/{token}"


def announce_invitation(
    session: Session,
    account: Account,
    token: str,
    base_url: str,
    correlation_id: str | None = None,
) -> UserInvited:
    """Ask notify (through the outbox, in this transaction) to mail the invitation's link.

    The mail is in the language of the person's organisation (English without one).
    """
    organisation = (
        session.get(Organisation, account.organisation_id) if account.organisation_id else None
    )
    message = UserInvited(
        user_id=account.id,
        email=account.email,
        name=account.name,
        language=organisation.language if organisation else "en",
        country=organisation.country if organisation else NO_ORGANISATION_COUNTRY,
        set_password_url=set_password_url(base_url, token),
        expires_at=account.created_at + timedelta(days=INVITATION_DAYS),
    )
    outbox_ops.enqueue(
        session, outbox, envelope_of(message, "/tacso/registry", account.id, correlation_id)
    )
    return message


def check_invitation(session: Session, token: str) -> Account:
    """The account a still-usable invitation names; :class:`BadCredentials` otherwise."""
    try:
        claims = signing.verify(session, token, INVITATION_AUDIENCE)
    except jwt.PyJWTError as exc:
        raise BadCredentials("the invitation is not valid") from exc
    account = session.get(Account, str(claims["sub"]))
    if account is None or account.disabled or claims.get("pwv") != _password_version(account):
        raise BadCredentials("the invitation is not valid")
    return account


def accept_invitation(session: Session, token: str, password: str) -> Account:
    """Set the password of the account an invitation names; :class:`BadCredentials` if the
    invitation is not valid (forged, expired, used)."""
    _check_password_rules(password)
    try:
        claims = signing.verify(session, token, INVITATION_AUDIENCE)
    except jwt.PyJWTError as exc:
        raise BadCredentials("the invitation is not valid") from exc
    account = session.get(Account, str(claims["sub"]), with_for_update=True)
    if account is None or account.disabled or claims.get("pwv") != _password_version(account):
        raise BadCredentials("the invitation is not valid")
    _set_password(account, password, datetime.now(UTC))
    return account


def password_caller(session: Session, email: str, password: str) -> Caller:
    """The caller whose email and password these are; :class:`BadCredentials` otherwise."""
    account = session.scalar(sa.select(Account).where(Account.email == email.strip().lower()))
    stored = account.password_hash if account is not None else None
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        raise BadCredentials("email or password is wrong") from None
    if account is None or stored is None or account.disabled:
        raise BadCredentials("email or password is wrong")
    organisation = (
        session.get(Organisation, account.organisation_id) if account.organisation_id else None
    )
    return caller_for(f"user:{account.id}", account.role, organisation, "token")


# ---- machine clients ------------------------------------------------------------------------
def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(
    session: Session,
    name: str,
    role: str,
    organisation_id: str | None,
    created_by: str | None = None,
) -> CreatedKey:
    """Add an API key; its secret is in the result and nowhere else."""
    _organisation_for_role(session, role, organisation_id)
    prefix = secrets.token_hex(4)
    while session.scalar(sa.select(ApiKey.id).where(ApiKey.prefix == prefix)):
        prefix = secrets.token_hex(4)  # pragma: no cover - one chance in four billion
    secret = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        id=str(uuid.uuid4()),
        name=name.strip(),
        prefix=prefix,
        secret_hash=_hash_secret(secret),
        role=role,
        organisation_id=organisation_id,
        created_at=datetime.now(UTC),
        created_by=created_by,
        last_used_at=None,
        revoked_at=None,
    )
    session.add(key)
    session.flush()
    return CreatedKey(key, secret)


def revoke_api_key(session: Session, key_id: str) -> ApiKey:
    """Revoke a key (kept, for the record); revoking twice is harmless."""
    key = session.get(ApiKey, key_id)
    if key is None:
        raise KeyNotFound(key_id)
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
    return key


def list_api_keys(session: Session) -> list[ApiKey]:
    """Every key, newest first (secrets are not stored, so none is shown)."""
    return list(session.scalars(sa.select(ApiKey).order_by(ApiKey.created_at.desc())))


def _caller_of_key(session: Session, key: ApiKey | None, secret: str) -> Caller | None:
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.secret_hash, _hash_secret(secret)):
        return None
    now = datetime.now(UTC)
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_PRECISION:
        key.last_used_at = now
    organisation = session.get(Organisation, key.organisation_id) if key.organisation_id else None
    return caller_for(f"api-key:{key.id}", key.role, organisation, "api_key")


def api_key_caller(session: Session, secret: str) -> Caller | None:
    """The caller of an API key sent as a bearer credential; ``None`` if it is no valid key."""
    scheme, _, rest = secret.partition("_")
    prefix, _, _ = rest.partition("_")
    if scheme != KEY_PREFIX or not prefix:
        return None
    key = session.scalar(sa.select(ApiKey).where(ApiKey.prefix == prefix))
    return _caller_of_key(session, key, secret)


def client_credentials_caller(session: Session, client_id: str, client_secret: str) -> Caller:
    """The caller of the key ``client_id`` if ``client_secret`` is its secret."""
    key = session.get(ApiKey, client_id)
    caller = _caller_of_key(session, key, client_secret)
    if caller is None:
        raise BadCredentials("the client id or secret is wrong")
    return caller
