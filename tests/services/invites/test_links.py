"""Signed RSVP links: one link, one answer, one attendee, until it expires."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.models.enums import AttendeeResponse
from server.services.invites import (
    InvalidLink,
    derive_key,
    make_rsvp_token,
    read_rsvp_token,
    rsvp_links,
)
from server.services.invites.links import sign

MASTER = b"instance master secret for tests, 32+ bytes long"
KEY = derive_key(MASTER, "rsvp")
MEETING = uuid.UUID("12345678-1234-5678-1234-567812345678")
NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
EXPIRES = NOW + timedelta(days=14)


def token(**changes: object) -> str:
    args: dict[str, object] = {
        "secret": KEY,
        "meeting_id": MEETING,
        "attendee_email": "ann@example.org",
        "response": AttendeeResponse.ACCEPTED,
        "expires_at": EXPIRES,
        "sequence": 2,
    }
    args.update(changes)
    return make_rsvp_token(**args)  # type: ignore[arg-type]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.mark.parametrize(
    "response",
    [AttendeeResponse.ACCEPTED, AttendeeResponse.TENTATIVE, AttendeeResponse.DECLINED],
)
def test_round_trip_returns_exactly_what_was_signed(response: AttendeeResponse) -> None:
    claim = read_rsvp_token(KEY, token(response=response), NOW)

    assert claim.meeting_id == MEETING
    assert claim.attendee_email == "ann@example.org"
    assert claim.response is response
    assert claim.sequence == 2
    assert claim.expires_at == EXPIRES


def test_sequence_is_optional() -> None:
    assert read_rsvp_token(KEY, token(sequence=None), NOW).sequence is None


def test_token_is_url_safe_and_compact() -> None:
    value = token()

    assert len(value) < 200
    assert set(value) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def test_links_hold_one_answer_each() -> None:
    links = rsvp_links(KEY, "https://tandem.example/", MEETING, "ann@example.org", EXPIRES, 2)

    assert set(links) == {"accepted", "tentative", "declined"}
    for answer, url in links.items():
        prefix = "https://tandem.example/rsvp/"
        assert url.startswith(prefix)
        assert "?" not in url
        assert read_rsvp_token(KEY, url.removeprefix(prefix), NOW).response.value == answer


def test_needs_action_is_not_an_answer() -> None:
    with pytest.raises(ValueError, match="accept"):
        token(response=AttendeeResponse.NEEDS_ACTION)


def test_tampered_payload_is_rejected() -> None:
    payload, signature = token(response=AttendeeResponse.DECLINED).split(".")
    body = json.loads(unb64(payload))
    body["r"] = "accepted"
    forged = f"{b64(json.dumps(body, separators=(',', ':')).encode())}.{signature}"

    with pytest.raises(InvalidLink) as caught:
        read_rsvp_token(KEY, forged, NOW)
    assert caught.value.reason == "signature"


def test_tampered_signature_is_rejected() -> None:
    payload, signature = token().split(".")
    raw = bytearray(unb64(signature))
    raw[0] ^= 1

    with pytest.raises(InvalidLink) as caught:
        read_rsvp_token(KEY, f"{payload}.{b64(bytes(raw))}", NOW)
    assert caught.value.reason == "signature"


def test_expired_token_is_rejected_from_its_expiry_on() -> None:
    value = token()

    assert read_rsvp_token(KEY, value, EXPIRES - timedelta(seconds=1)).response
    with pytest.raises(InvalidLink) as caught:
        read_rsvp_token(KEY, value, EXPIRES)
    assert caught.value.reason == "expired"


def test_token_for_another_purpose_never_reads_as_rsvp() -> None:
    # Same key, same claim shape, only the purpose differs.
    other = sign(KEY, "poll", {"m": MEETING.hex, "e": "ann@example.org", "r": "accepted"}, EXPIRES)

    with pytest.raises(InvalidLink):
        read_rsvp_token(KEY, other, NOW)


def test_purpose_inside_the_payload_is_checked_too() -> None:
    # A payload naming another purpose but MACed as "rsvp" still fails on purpose.
    from server.services.invites import links

    body = {
        "p": "poll",
        "x": int(EXPIRES.timestamp()),
        "m": MEETING.hex,
        "e": "a@b.c",
        "r": "accepted",
    }
    payload = b64(json.dumps(body).encode())
    forged = f"{payload}.{b64(links._mac(KEY, 'rsvp', payload))}"

    with pytest.raises(InvalidLink) as caught:
        read_rsvp_token(KEY, forged, NOW)
    assert caught.value.reason == "purpose"


def test_token_signed_with_another_key_is_rejected() -> None:
    other_key = derive_key(b"another installation's master secret", "rsvp")

    with pytest.raises(InvalidLink) as caught:
        read_rsvp_token(other_key, token(), NOW)
    assert caught.value.reason == "signature"


def test_derived_keys_differ_by_purpose_and_master() -> None:
    assert len(KEY) == 32
    assert derive_key(MASTER, "rsvp") == KEY
    assert derive_key(MASTER, "poll") != KEY
    assert derive_key(MASTER + b"x", "rsvp") != KEY


@pytest.mark.parametrize(
    "garbage",
    ["", ".", "abc", "a.b.c", "!!!.???", "e30.", "e30.AAAA", "x" * 5000, "é.é"],
)
def test_garbage_is_malformed_or_unsigned(garbage: str) -> None:
    with pytest.raises(InvalidLink) as caught:
        read_rsvp_token(KEY, garbage, NOW)
    assert caught.value.reason in {"malformed", "signature"}


def test_error_message_does_not_echo_the_token() -> None:
    value = token()
    payload = value.split(".")[0]

    with pytest.raises(InvalidLink) as caught:
        read_rsvp_token(KEY, value, EXPIRES + timedelta(days=1))
    assert payload not in str(caught.value)
    assert "ann@example.org" not in str(caught.value)


@settings(max_examples=100, deadline=None)
@given(position=st.integers(min_value=0), replacement=st.sampled_from("AQgw-_"))
def test_any_single_character_change_is_rejected(position: int, replacement: str) -> None:
    value = token()
    position %= len(value)
    if value[position] == replacement or value[position] == ".":
        return
    changed = value[:position] + replacement + value[position + 1 :]
    with pytest.raises(InvalidLink):
        read_rsvp_token(KEY, changed, NOW)
