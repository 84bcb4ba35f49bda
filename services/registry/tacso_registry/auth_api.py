"""The registry's credential API: tokens, the JWK set, API keys and invited people (thin views)."""

from __future__ import annotations

from typing import Any, NoReturn

from flask import Response, current_app, jsonify, request
from flask.views import MethodView
from sqlalchemy.exc import IntegrityError

from tacso_registry import accounts, signing
from tacso_registry.bootstrap import Registry
from tacso_registry.models import ApiKey, audit_log
from tacso_registry.schemas import (
    ApiKeyCreatedSchema,
    ApiKeyCreateSchema,
    ApiKeySchema,
    CallerSchema,
    InvitedUserSchema,
    JwksSchema,
    OAuthErrorSchema,
    SetPasswordSchema,
    TokenRequestSchema,
    TokenSchema,
    UserCreateSchema,
)
from tacso_shared import audit
from tacso_shared.audit_api import request_actor
from tacso_shared.auth import current_caller, public, require
from tacso_shared.db import transaction
from tacso_shared.identity import (
    ALL_AUDIENCES,
    COUNTRY_EDITOR,
    ORGANISATION_MEMBER,
    SERVICE,
    Caller,
)
from tacso_shared.ratelimit import CREDENTIALS, PUBLIC, rate_limited
from tacso_shared.web import Blueprint, abort

blp = Blueprint(
    "credentials", __name__, url_prefix="/api/v1", description="Tokens, API keys and accounts"
)
well_known = Blueprint(
    "well_known", __name__, url_prefix="/.well-known", description="Token signing keys"
)


def _registry() -> Registry:
    registry: Registry = current_app.extensions["tacso_registry"]
    return registry


def _oauth_error(status: int, error: str, description: str) -> Response:
    response = jsonify(error=error, error_description=description)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="tacso"'
    return response


def _refuse(exc: accounts.AccountRefused) -> NoReturn:
    abort(422, message=exc.reason, errors={"json": {exc.field: [exc.reason]}})


@blp.route("/auth/token")
class Token(MethodView):
    @rate_limited(CREDENTIALS)
    @public
    @blp.arguments(TokenRequestSchema, location="json_or_form")
    @blp.doc(requestBody={"content": {"application/json": {"schema": "TokenRequestSchema"}}})
    @blp.response(200, TokenSchema)
    @blp.alt_response(400, schema=OAuthErrorSchema, description="The grant is not valid")
    @blp.alt_response(401, schema=OAuthErrorSchema, description="The client is not valid")
    def post(self, data: dict[str, Any]) -> Any:
        """Issue a token (OAuth 2.0: password or client_credentials grant; form or JSON)."""
        registry = _registry()
        audiences = [data["audience"]] if data.get("audience") else list(ALL_AUDIENCES)
        with transaction(registry.sessions) as session:
            try:
                caller: Caller
                if data["grant_type"] == "password":
                    caller = accounts.password_caller(session, data["username"], data["password"])
                else:
                    caller = accounts.client_credentials_caller(
                        session, data["client_id"], data["client_secret"]
                    )
            except accounts.BadCredentials:
                if data["grant_type"] == "password":
                    return _oauth_error(400, "invalid_grant", "The email or password is wrong.")
                return _oauth_error(401, "invalid_client", "The client id or secret is wrong.")
            token, ttl = signing.issue_token(
                session, caller, audiences, registry.settings.common.token_ttl_seconds
            )
        response = jsonify(access_token=token, token_type="Bearer", expires_in=ttl)  # noqa: S106 - not a password
        response.headers["Cache-Control"] = "no-store"
        return response


@blp.route("/auth/me")
class Me(MethodView):
    @require(COUNTRY_EDITOR, ORGANISATION_MEMBER, SERVICE)
    @blp.response(200, CallerSchema)
    def get(self) -> Caller:
        """Who the request's credential stands for."""
        return current_caller()


@well_known.route("/jwks.json")
class Jwks(MethodView):
    @rate_limited(PUBLIC)
    @public
    @well_known.response(200, JwksSchema)
    def get(self) -> Any:
        """The public keys that verify registry's tokens (JWK set, by ``kid``)."""
        with _registry().sessions() as session:
            document = signing.jwks_document(session)
        response = jsonify(document)
        # Short: a rotation reaches everyone soon even without an unknown-kid refresh.
        response.cache_control.public = True
        response.cache_control.max_age = 60
        return response


@blp.route("/api-keys")
class ApiKeys(MethodView):
    @require()
    @blp.response(200, ApiKeySchema(many=True))
    def get(self) -> Any:
        """List the API keys (never their secrets)."""
        with _registry().sessions() as session:
            return accounts.list_api_keys(session)

    @require()
    @blp.arguments(ApiKeyCreateSchema)
    @blp.response(201, ApiKeyCreatedSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create an API key; its secret is in this answer and never again."""
        try:
            with transaction(_registry().sessions) as session:
                created = accounts.create_api_key(
                    session,
                    data["name"],
                    data["role"],
                    data["organisation_id"],
                    created_by=current_caller().subject,
                )
                key = _key_fields(created.key)
                audit.record(
                    session,
                    audit_log,
                    request_actor(),
                    "api_key.create",
                    "api_key",
                    created.key.id,
                    after=key,
                )
        except accounts.AccountRefused as exc:
            _refuse(exc)
        return {**key, "secret": created.secret}


@blp.route("/api-keys/<string:key_id>")
class ApiKeyById(MethodView):
    @require()
    @blp.response(204)
    @blp.alt_response(404, description="No such API key")
    def delete(self, key_id: str) -> None:
        """Revoke an API key (at once for registry; tokens it got expire within minutes)."""
        try:
            with transaction(_registry().sessions) as session:
                key = accounts.revoke_api_key(session, key_id)
                audit.record(
                    session,
                    audit_log,
                    request_actor(),
                    "api_key.revoke",
                    "api_key",
                    key.id,
                    after={"revoked_at": key.revoked_at},
                )
        except accounts.KeyNotFound:
            abort(404, message=f"No API key with id {key_id}.")


@blp.route("/users")
class Users(MethodView):
    @require()
    @blp.arguments(UserCreateSchema)
    @blp.response(201, InvitedUserSchema)
    @blp.alt_response(409, description="Another account already uses this email")
    def post(self, data: dict[str, Any]) -> Any:
        """Invite a person: an account whose owner sets the password with the invitation.

        The invitation is mailed (notify, in the language of the person's organisation) with
        a link to registry's set-password page; the answer still carries its token.
        """
        try:
            with transaction(_registry().sessions) as session:
                account = accounts.create_account(
                    session, data["email"], data["name"], data["role"], data["organisation_id"]
                )
                token = accounts.invitation_token(session, account)
                accounts.announce_invitation(
                    session,
                    account,
                    token,
                    _registry().public_url,
                    request.headers.get("X-Correlation-ID"),
                )
                audit.record(
                    session,
                    audit_log,
                    request_actor(),
                    "account.invite",
                    "account",
                    account.id,
                    after=_account_fields(account),
                )
        except accounts.AccountRefused as exc:
            _refuse(exc)
        except (accounts.DuplicateAccount, IntegrityError):
            abort(409, message="An account with this email exists already.")
        return {**_account_fields(account), "invitation_token": token}


@blp.route("/users/password")
class UserPassword(MethodView):
    @rate_limited(CREDENTIALS)
    @public
    @blp.arguments(SetPasswordSchema)
    @blp.response(204)
    @blp.alt_response(400, description="The invitation is not valid, expired or used")
    def post(self, data: dict[str, Any]) -> None:
        """Set a password with an invitation's token (once)."""
        try:
            with transaction(_registry().sessions) as session:
                account = accounts.accept_invitation(session, data["token"], data["password"])
                audit.record(
                    session,
                    audit_log,
                    request_actor(),
                    "account.set_password",
                    "account",
                    account.id,
                    after={"password_set_at": account.password_set_at},
                )
        except accounts.AccountRefused as exc:
            _refuse(exc)
        except accounts.BadCredentials:
            abort(400, message="The invitation is not valid, has expired or was used.")


def _account_fields(account: Any) -> dict[str, Any]:
    return {
        "id": account.id,
        "email": account.email,
        "name": account.name,
        "role": account.role,
        "organisation_id": account.organisation_id,
        "created_at": account.created_at,
        "password_set_at": account.password_set_at,
    }


def _key_fields(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "role": key.role,
        "organisation_id": key.organisation_id,
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "revoked_at": key.revoked_at,
    }
