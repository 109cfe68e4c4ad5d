"""Signed links that let an attendee answer an invitation without logging in.

A link does exactly one thing: the response (accept, tentative, decline) is inside the
signed token, so one email carries three links and no query parameter can change what a
click means. Tokens are ``base64url(payload) "." base64url(HMAC-SHA256)``; the payload names
its purpose, and the HMAC also covers the purpose, so a token minted for anything else
never reads as an RSVP. Keys come from :func:`derive_key`, one per purpose, so a leaked
purpose key cannot forge the others.

The payload is signed, not encrypted: it holds the meeting id and the attendee's email,
so a token is as sensitive as the invitation email itself and must not be logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from server.models.enums import AttendeeResponse

RSVP_PURPOSE = "rsvp"
RSVP_RESPONSES = (AttendeeResponse.ACCEPTED, AttendeeResponse.TENTATIVE, AttendeeResponse.DECLINED)

InvalidReason = Literal["malformed", "signature", "purpose", "expired"]

_MAX_TOKEN_LENGTH = 2048


class InvalidLink(Exception):
    """The link cannot be honoured; ``reason`` lets a page say "expired" rather than "broken".

    The message never contains the token or what it claims.
    """

    def __init__(self, reason: InvalidReason) -> None:
        super().__init__(f"invalid link ({reason})")
        self.reason: InvalidReason = reason


@dataclass(frozen=True, slots=True)
class RsvpClaim:
    """What a valid RSVP link asks for. ``sequence`` is the invitation version it was sent
    with (None when not bound), so the caller can refuse answers to a superseded time."""

    meeting_id: uuid.UUID
    attendee_email: str
    response: AttendeeResponse
    sequence: int | None
    expires_at: datetime


def derive_key(master: bytes, purpose: str) -> bytes:
    """A 32-byte key for one purpose, derived from the instance secret with HKDF-SHA256."""
    if not master:
        raise ValueError("master key must not be empty")
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"tandem/link/" + purpose.encode(),
    )
    return hkdf.derive(master)


def sign(secret: bytes, purpose: str, claims: dict[str, Any], expires_at: datetime) -> str:
    """A token carrying ``claims`` (JSON-able) for ``purpose`` until ``expires_at``.

    Generic so later link kinds (poll answers) share one audited format.
    """
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be aware")
    body = {"p": purpose, "x": int(expires_at.timestamp()), **claims}
    payload = _b64encode(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
    return f"{payload}.{_b64encode(_mac(secret, purpose, payload))}"


def verify(secret: bytes, purpose: str, token: str, now: datetime) -> dict[str, Any]:
    """The claims of a token made by :func:`sign` for ``purpose``, checked and unexpired.

    Order matters: the signature is checked before anything in the payload is trusted.
    """
    if len(token) > _MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise InvalidLink("malformed")
    payload, signature = token.split(".")
    try:
        given = _b64decode(signature)
    except ValueError:
        raise InvalidLink("malformed") from None
    if not hmac.compare_digest(given, _mac(secret, purpose, payload)):
        raise InvalidLink("signature")
    try:
        body = json.loads(_b64decode(payload))
    except ValueError:
        raise InvalidLink("malformed") from None
    if not isinstance(body, dict) or not isinstance(body.get("x"), int):
        raise InvalidLink("malformed")
    if body.get("p") != purpose:
        raise InvalidLink("purpose")
    if now.timestamp() >= body["x"]:
        raise InvalidLink("expired")
    return body


def make_rsvp_token(
    secret: bytes,
    meeting_id: uuid.UUID,
    attendee_email: str,
    response: AttendeeResponse,
    expires_at: datetime,
    sequence: int | None = None,
) -> str:
    """A token that records exactly one ``response`` for one attendee of one meeting."""
    if response not in RSVP_RESPONSES:
        raise ValueError("an RSVP link must accept, decline or say tentative")
    claims: dict[str, Any] = {"m": meeting_id.hex, "e": attendee_email, "r": response.value}
    if sequence is not None:
        claims["s"] = sequence
    return sign(secret, RSVP_PURPOSE, claims, expires_at)


def read_rsvp_token(secret: bytes, token: str, now: datetime) -> RsvpClaim:
    """The claim of a valid RSVP token; raises :class:`InvalidLink` otherwise."""
    body = verify(secret, RSVP_PURPOSE, token, now)
    try:
        response = AttendeeResponse(body["r"])
        sequence = body.get("s")
        if response not in RSVP_RESPONSES or not isinstance(body["e"], str):
            raise ValueError
        if sequence is not None and not isinstance(sequence, int):
            raise ValueError
        return RsvpClaim(
            meeting_id=uuid.UUID(hex=body["m"]),
            attendee_email=body["e"],
            response=response,
            sequence=sequence,
            expires_at=datetime.fromtimestamp(body["x"], UTC),
        )
    except (KeyError, TypeError, ValueError):
        raise InvalidLink("malformed") from None


def rsvp_url(base_url: str, token: str) -> str:
    """The public URL of an RSVP token, e.g. ``https://tandem.example/rsvp/<token>``."""
    return f"{base_url.rstrip('/')}/rsvp/{token}"


def rsvp_links(
    secret: bytes,
    base_url: str,
    meeting_id: uuid.UUID,
    attendee_email: str,
    expires_at: datetime,
    sequence: int | None = None,
) -> dict[str, str]:
    """One URL per response, keyed ``accepted`` / ``tentative`` / ``declined``, ready for
    :func:`server.services.invites.messages.invitation_message`."""
    return {
        response.value: rsvp_url(
            base_url,
            make_rsvp_token(secret, meeting_id, attendee_email, response, expires_at, sequence),
        )
        for response in RSVP_RESPONSES
    }


def _mac(secret: bytes, purpose: str, payload: str) -> bytes:
    if not secret:
        raise ValueError("secret must not be empty")
    return hmac.new(secret, f"{purpose}.{payload}".encode(), hashlib.sha256).digest()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict base64url: only the canonical spelling decodes, so each token has exactly one
    string form (callers may use it as a key, e.g. to remember links already used)."""
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc
    if _b64encode(data) != text:
        raise ValueError("not canonical base64url")
    return data
