"""Python client of the TACSO events network's APIs (registry, events, notify).

from tacso_client import ClientCredentials, TacsoClient

auth = ClientCredentials("http://localhost:5001", client_id, client_secret)
with TacsoClient(auth=auth) as tacso:
    for org in tacso.registry.organisations(country="BA", kind="cso"):
        print(org["name"])
"""

from tacso_client.auth import ApiKey, ClientCredentials, PasswordGrant, TokenGrant
from tacso_client.client import (
    Endpoint,
    EventsApi,
    NotifyApi,
    RegistryApi,
    ServiceApi,
    TacsoClient,
    operation,
    operations,
)
from tacso_client.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
)

__all__ = [
    "ApiError",
    "ApiKey",
    "BadRequest",
    "ClientCredentials",
    "Conflict",
    "Endpoint",
    "EventsApi",
    "Forbidden",
    "NotFound",
    "NotifyApi",
    "PasswordGrant",
    "RateLimited",
    "RegistryApi",
    "ServerError",
    "ServiceApi",
    "ServiceUnavailable",
    "TacsoClient",
    "TokenGrant",
    "Unauthorized",
    "ValidationFailed",
    "operation",
    "operations",
]
