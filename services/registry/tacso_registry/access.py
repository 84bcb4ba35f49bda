"""Who may read and write which organisations: the registry's scope rules, as plain functions.

The role a view admits is declared next to it (``require``); these functions add the scope: a
country editor acts in its own country, an organisation member on its own organisation.
"""

from __future__ import annotations

from tacso_registry.models import Organisation
from tacso_shared.identity import (
    COUNTRY_EDITOR,
    NETWORK_ADMIN,
    ORGANISATION_MEMBER,
    SERVICE,
    Caller,
)

#: The kinds of organisation a country editor registers (RCs and offices are the admin's).
EDITOR_REGISTERS = ("cso", "media")


def may_list_country(caller: Caller, country: str | None) -> bool:
    """Whether ``caller`` may list organisations of ``country`` (``None``: its own countries)."""
    if caller.role in (NETWORK_ADMIN, SERVICE):
        return True
    return caller.role == COUNTRY_EDITOR and (country is None or caller.covers(country))


def listed_countries(caller: Caller) -> tuple[str, ...]:
    """The countries a list is limited to for ``caller``; empty for no limit."""
    if caller.role in (NETWORK_ADMIN, SERVICE):
        return ()
    return caller.countries


def may_read(caller: Caller, organisation: Organisation) -> bool:
    """Whether ``caller`` may read ``organisation`` with its contact details."""
    if caller.role in (NETWORK_ADMIN, SERVICE):
        return True
    if caller.role == COUNTRY_EDITOR:
        return caller.covers(organisation.country)
    return caller.role == ORGANISATION_MEMBER and caller.organisation_id == organisation.id


def may_register(caller: Caller, country: str, kind: str) -> bool:
    """Whether ``caller`` may register an organisation of ``kind`` in ``country``."""
    if caller.is_network_admin:
        return True
    return caller.role == COUNTRY_EDITOR and caller.covers(country) and kind in EDITOR_REGISTERS


def may_change(caller: Caller, organisation: Organisation) -> bool:
    """Whether ``caller`` may change ``organisation``'s profile and preferences (a member: its
    own organisation's)."""
    if caller.is_network_admin:
        return True
    if caller.role == COUNTRY_EDITOR:
        return caller.covers(organisation.country)
    return caller.role == ORGANISATION_MEMBER and caller.organisation_id == organisation.id


def may_administer(caller: Caller, organisation: Organisation) -> bool:
    """Whether ``caller`` may deactivate, activate or erase ``organisation`` (members may not:
    erasure is asked of the RC or the network, who check who asks)."""
    if caller.is_network_admin:
        return True
    return caller.role == COUNTRY_EDITOR and caller.covers(organisation.country)
