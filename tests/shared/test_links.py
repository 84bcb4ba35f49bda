"""Personal link tokens: genuine ones load, tampered, foreign and expired ones are refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tacso_shared.links import BadLink, ExpiredLink, LinkSigner, LinkToken, link_keys

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _token(**changes: object) -> LinkToken:
    fields: dict[str, object] = {
        "purpose": "rsvp",
        "organisation_id": "org-1",
        "expires_at": NOW + timedelta(days=10),
        "event_id": "ev-1",
        "language": "bs",
        "extra": {"registration_id": "r-1"},
    }
    fields.update(changes)
    return LinkToken(**fields)  # type: ignore[arg-type]


def test_a_signed_token_loads_back_with_everything_it_carries() -> None:
    signer = LinkSigner(["k1"])
    loaded = signer.load(signer.sign(_token()), ["rsvp"], now=NOW)
    assert loaded == _token(expires_at=loaded.expires_at)
    assert loaded.expires_at == NOW + timedelta(days=10)


def test_a_rotated_key_list_accepts_old_links_and_signs_with_the_first_key() -> None:
    old = LinkSigner(["old"]).sign(_token())
    rotated = LinkSigner(["new", "old"])
    assert rotated.load(old, ["rsvp"], now=NOW).organisation_id == "org-1"
    fresh = rotated.sign(_token())
    assert LinkSigner(["new"]).load(fresh, ["rsvp"], now=NOW).event_id == "ev-1"
    with pytest.raises(BadLink):
        LinkSigner(["old"]).load(fresh, ["rsvp"], now=NOW)


@pytest.mark.parametrize(
    "mangle",
    [lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), lambda t: "x" + t, lambda t: ""],
)
def test_a_tampered_token_is_a_bad_link(mangle: object) -> None:
    signer = LinkSigner(["k1"])
    with pytest.raises(BadLink):
        signer.load(mangle(signer.sign(_token())), ["rsvp"], now=NOW)  # type: ignore[operator]


def test_a_token_for_another_purpose_is_a_bad_link() -> None:
    signer = LinkSigner(["k1"])
    with pytest.raises(BadLink, match="something else"):
        signer.load(signer.sign(_token(purpose="unsubscribe")), ["rsvp", "claim"], now=NOW)


def test_an_expired_token_says_so_and_still_tells_what_it_was() -> None:
    signer = LinkSigner(["k1"])
    raw = signer.sign(_token(expires_at=NOW - timedelta(seconds=1)))
    with pytest.raises(ExpiredLink) as caught:
        signer.load(raw, ["rsvp"], now=NOW)
    assert caught.value.token.event_id == "ev-1"


def test_keys_come_from_the_environment_first_one_first() -> None:
    assert link_keys({"LINK_SIGNING_KEYS": " a , b ,"}) == ("a", "b")
    assert len(link_keys({})) == 1
    with pytest.raises(ValueError):
        LinkSigner([])


def test_tokens_are_itsdangerous_url_safe_tokens_both_ways() -> None:
    """The fast signing path makes exactly what itsdangerous reads, and reads what it makes."""
    from itsdangerous import URLSafeSerializer

    expires = datetime.now(UTC) + timedelta(days=30)
    signer = LinkSigner(["new-key", "old-key"])
    plain = URLSafeSerializer(["old-key", "new-key"], salt="tacso.links.v1")
    token = LinkToken("unsubscribe", "org-ž", expires, language="sr-Latn", extra={"k": "ü"})

    assert plain.loads(signer.sign(token))["o"] == "org-ž"
    made_by_itsdangerous = plain.dumps(
        {"p": "unsubscribe", "o": "org-1", "x": int(expires.timestamp())}
    )
    assert signer.load(made_by_itsdangerous, ["unsubscribe"]).organisation_id == "org-1"
