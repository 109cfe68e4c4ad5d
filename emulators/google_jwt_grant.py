"""The service-account JWT bearer grant at Google's token endpoint (RFC 7523).

The client posts ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` and
``assertion=<RS256 JWT>`` signed with the service account's private key. The claims, per
https://developers.google.com/identity/protocols/oauth2/service-account ("Preparing to
make an authorized API call" → "Forming the JWT claim set"):

- ``iss``: the service account's email;
- ``scope``: space-delimited scopes;
- ``aud``: "When making an access token request this value is always
  https://oauth2.googleapis.com/token" (so it is checked against that constant, not
  against the emulator's own address);
- ``exp``/``iat``: "a maximum of 1 hour after the issued time";
- ``sub``: the user to impersonate, for domain-wide delegation, which a super admin must
  have authorized for the service account's client id and those scopes
  (https://support.google.com/a/answer/162106).

Error codes and descriptions follow that page's "Error codes" and what Google's token
endpoint is widely seen to answer (public client-library issues quoting it, e.g.
googleapis/google-api-php-client#2214 for ``unauthorized_client``).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from starlette.responses import JSONResponse, Response

from emulators.google_http import oauth_error
from emulators.google_state import KNOWN_SCOPES, GoogleState, Grant, normalize_scopes
from emulators.google_workspace import GOOGLE_TOKEN_URI

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_LIFETIME = 3600
CLOCK_SKEW = 300  # UNVERIFIED: how much clock skew Google tolerates on iat

UNAUTHORIZED_CLIENT = (
    "Client is unauthorized to retrieve access tokens using this method, "
    "or client not authorized for any of the scopes requested."
)
BAD_TIMES = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
    "timeframe. Check your iat and exp values in the JWT claim."
)


class _Refused(Exception):
    def __init__(self, error: str, description: str) -> None:
        self.error, self.description = error, description


def jwt_bearer_grant(state: GoogleState, form: dict[str, str]) -> Response:
    """Verify the assertion and answer an access token for ``sub`` (or the service
    account itself without one). No refresh token: the client signs a new assertion."""
    try:
        grant = _verify(state, form.get("assertion", ""))
    except _Refused as refused:
        return oauth_error(400, refused.error, refused.description)
    with state.lock:
        state.grants[grant.grant_id] = grant
        access, _ = state.issue_tokens(grant.grant_id, with_refresh=False)
    body: dict[str, Any] = {
        "access_token": access,
        "expires_in": state.access_token_ttl - 1,
        "token_type": "Bearer",
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _verify(state: GoogleState, assertion: str) -> Grant:
    header, claims, signing_input, signature = _split(assertion)
    if header.get("alg") != "RS256":
        raise _Refused("invalid_grant", "Invalid JWT: unsupported signing algorithm.")
    with state.lock:
        account = state.workspace.service_accounts.get(str(claims.get("iss", "")))
        if account is None or account.disabled:
            raise _Refused("invalid_grant", "Invalid grant: account not found")
        keys = (
            [account.keys[header["kid"]]]
            if header.get("kid") in account.keys
            else list(account.keys.values())
        )
    if not any(_signed_by(key.public_key, signing_input, signature) for key in keys):
        raise _Refused("invalid_grant", "Invalid JWT Signature.")
    if claims.get("aud") != GOOGLE_TOKEN_URI:
        raise _Refused("invalid_grant", "Invalid JWT: audience is not the token endpoint.")
    _check_times(state, claims)
    scopes = normalize_scopes(str(claims.get("scope") or ""))
    if not scopes:
        raise _Refused("invalid_scope", "Empty or missing scope not allowed.")
    if any(scope not in KNOWN_SCOPES for scope in scopes):
        raise _Refused("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
    subject = str(claims.get("sub") or "").lower()
    if not subject:  # the service account acting as itself (its own, empty calendar)
        return Grant(
            f"{account.client_email} {account.client_id}",
            account.client_id,
            account.client_email,
            scopes,
        )
    with state.lock:
        workspace = state.workspace.workspace_of(subject)
        if workspace is None or subject not in state.accounts:
            raise _Refused("invalid_grant", "Invalid email or User ID")
        allowed = workspace.delegations.get(account.client_id)
        if allowed is None or not set(scopes) <= allowed:
            raise _Refused("unauthorized_client", UNAUTHORIZED_CLIENT)
    return Grant(f"{subject} {account.client_id}", account.client_id, subject, scopes)


def _split(assertion: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    parts = assertion.split(".")
    if len(parts) != 3:
        raise _Refused("invalid_grant", "Invalid JWT: malformed assertion.")
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        signature = _unb64(parts[2])
    except ValueError:
        raise _Refused("invalid_grant", "Invalid JWT: malformed assertion.") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise _Refused("invalid_grant", "Invalid JWT: malformed assertion.")
    return header, claims, f"{parts[0]}.{parts[1]}".encode(), signature


def _signed_by(public_key: Any, signing_input: bytes, signature: bytes) -> bool:
    try:
        public_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _check_times(state: GoogleState, claims: dict[str, Any]) -> None:
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or not isinstance(exp, int):
        raise _Refused("invalid_grant", BAD_TIMES)
    now = state.clock()
    if exp <= iat or exp - iat > MAX_LIFETIME or iat > now + CLOCK_SKEW or exp <= now:
        raise _Refused("invalid_grant", BAD_TIMES)


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise ValueError("not base64url") from None
