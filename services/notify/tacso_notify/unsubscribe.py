"""The personal unsubscribe and preferences links of each recipient's mail (RFC 8058).

Every bulk mail carries ``List-Unsubscribe: <{REGISTRY_PUBLIC_URL}/unsubscribe/<token>>`` and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click``, and a footer link to
``{REGISTRY_PUBLIC_URL}/preferences/<token>``. The token is signed with ``LINK_SIGNING_KEYS``
(:mod:`tacso_shared.links`, purpose ``unsubscribe``): registry, which serves the pages, checks it
with the same keys. One token per recipient, made when their copy is personalised.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tacso_shared.links import LinkSigner, LinkToken

PURPOSE = "unsubscribe"
#: How long a link in a mail stays good: a year (an old mail must still let one unsubscribe).
LIFETIME = timedelta(days=365)


class UnsubscribeLinks:
    """Makes each recipient's links; the expiry is fixed once per rendered message (cheap)."""

    def __init__(self, signer: LinkSigner, registry_public_url: str) -> None:
        self.signer = signer
        self.base = registry_public_url.rstrip("/")

    def expiry(self, now: datetime | None = None) -> datetime:
        """When links made now expire."""
        return (now or datetime.now(UTC)) + LIFETIME

    def token(self, organisation_id: str, language: str, expires_at: datetime) -> str:
        """The signed token of one recipient."""
        return self.signer.sign(LinkToken(PURPOSE, organisation_id, expires_at, language=language))

    def unsubscribe_url(self, token: str) -> str:
        """Where the one-click POST goes (and a GET asks for confirmation)."""
        return f"{self.base}/unsubscribe/{token}"

    def preferences_url(self, token: str) -> str:
        """The preferences page of the footer."""
        return f"{self.base}/preferences/{token}"
