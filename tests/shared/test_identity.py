"""Specification of the key cache every service verifies tokens with."""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from tacso_shared.identity import KeySet


def jwk(kid: str) -> dict[str, Any]:
    key: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(Ed25519PrivateKey.generate().public_key()))
    return {**key, "kid": kid, "use": "sig", "alg": "EdDSA"}


class FakeIssuer:
    """A JWK set that changes when told to, or fails like an issuer that is down."""

    def __init__(self, *kids: str) -> None:
        self.keys = [jwk(k) for k in kids]
        self.down = False
        self.fetches = 0

    def __call__(self) -> dict[str, Any]:
        self.fetches += 1
        if self.down:
            raise ConnectionError("registry is down")
        return {"keys": list(self.keys)}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestKeySet:
    def test_fetches_once_and_serves_known_keys_from_memory(self) -> None:
        issuer = FakeIssuer("a")
        keys = KeySet(issuer, clock=Clock())

        assert keys.key("a") is not None
        assert keys.key("a") is not None
        assert issuer.fetches == 1

    def test_an_unknown_kid_fetches_again_at_once(self) -> None:
        issuer, clock = FakeIssuer("a"), Clock()
        keys = KeySet(issuer, clock=clock)
        keys.key("a")

        issuer.keys.append(jwk("b"))
        clock.now += 0.01

        assert keys.key("b") is not None
        assert issuer.fetches == 2

    def test_made_up_kids_cannot_hammer_the_issuer(self) -> None:
        issuer = FakeIssuer("a")
        keys = KeySet(issuer, clock=Clock())

        for n in range(100):
            assert keys.key(f"made-up-{n}") is None
            assert keys.key("made-up-0") is None

        assert issuer.fetches == KeySet.MAX_REFRESHES

    def test_known_keys_stay_in_use_while_the_issuer_is_down(self) -> None:
        issuer, clock = FakeIssuer("a"), Clock()
        keys = KeySet(issuer, ttl=60, clock=clock)
        keys.key("a")

        issuer.down = True
        clock.now += 3600

        assert keys.key("a") is not None
        assert issuer.fetches == 2

    def test_a_retired_key_is_dropped_once_the_set_is_fetched_again(self) -> None:
        issuer, clock = FakeIssuer("a", "b"), Clock()
        keys = KeySet(issuer, ttl=60, clock=clock)
        keys.key("a")

        issuer.keys = [k for k in issuer.keys if k["kid"] != "a"]
        clock.now += 61

        assert keys.key("a") is None
        assert keys.kids() == ["b"]
