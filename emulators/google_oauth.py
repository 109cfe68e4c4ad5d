"""Google's OAuth 2.0 endpoints: consent page, token endpoint, revocation.

The token endpoint also takes a service account's JWT bearer grant (``google_jwt_grant``).

Granular consent: Google's consent screen lets the user untick individual scopes, and
"the scopes granted by the user" are what the token response's ``scope`` lists; apps
"must check what scopes are granted by the users and can't assume users grant all
requested scopes" (Google Identity, "How to handle granular permissions"). The sign-in
scopes (``openid``, ``email``, ``profile``) have no checkbox and are always granted;
every other requested scope is a checkbox, ticked by default, and a browser submits only
the ticked ones (``granted`` form fields).

The account email reaches the client the way Google sends it when ``openid email`` is
asked: in an ``id_token`` JWT from the token endpoint. Google signs it with RS256; the
emulator signs it with HS256 keyed by the client secret (a form OpenID Connect allows
for confidential clients), so a client that reads the claims of an ID token received
directly from the token endpoint over TLS works against both.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from emulators.google_http import oauth_error
from emulators.google_jwt_grant import JWT_BEARER, jwt_bearer_grant
from emulators.google_state import (
    KNOWN_SCOPES,
    SHORT_SCOPES,
    AuthCode,
    GoogleState,
    Grant,
    PendingConsent,
    normalize_scopes,
)

ISSUER = "https://accounts.google.com"
SIGN_IN_SCOPES = frozenset({"openid", *SHORT_SCOPES.values()})
_CODE_TTL = 600


def oauth_routes(state: GoogleState) -> list[Route]:
    async def authorize(request: Request) -> Response:
        return _authorize(state, request)

    async def consent(request: Request) -> Response:
        form = await request.form()
        granted = [str(v) for k, v in form.multi_items() if k == "granted"]
        return _consent(state, request, {k: str(v) for k, v in form.items()}, granted)

    async def token(request: Request) -> Response:
        form = await request.form()
        return _token(state, request, {k: str(v) for k, v in form.items()})

    async def revoke(request: Request) -> Response:
        form = await request.form()
        value = str(form.get("token") or request.query_params.get("token") or "")
        return _revoke(state, value)

    return [
        Route("/o/oauth2/v2/auth", authorize, methods=["GET"], name="google_authorize"),
        Route("/o/oauth2/v2/auth/consent", consent, methods=["POST"], name="google_consent"),
        Route("/token", token, methods=["POST"]),
        Route("/revoke", revoke, methods=["POST"]),
    ]


# --- authorization -------------------------------------------------------------------


def _authorize(state: GoogleState, request: Request) -> Response:
    params = request.query_params
    client = state.clients.get(params.get("client_id", ""))
    if client is None:
        return _error_page(401, "invalid_client", "The OAuth client was not found.")
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in client.redirect_uris:
        return _error_page(400, "redirect_uri_mismatch", "The redirect URI is not registered.")
    oauth_state = params.get("state")

    def fail(error: str) -> Response:
        return _redirect(redirect_uri, {"error": error, "state": oauth_state})

    if params.get("response_type") != "code":
        return fail("unsupported_response_type")
    scopes = normalize_scopes(params.get("scope", ""))
    if not scopes or any(scope not in KNOWN_SCOPES for scope in scopes):
        return fail("invalid_scope")
    method = params.get("code_challenge_method", "plain")
    challenge = params.get("code_challenge")
    if method not in ("S256", "plain") or ("code_challenge_method" in params and not challenge):
        return fail("invalid_request")
    access_type = params.get("access_type", "online")
    prompts = set(params.get("prompt", "").split())
    if access_type not in ("online", "offline") or not prompts <= {
        "none",
        "consent",
        "select_account",
    }:
        return fail("invalid_request")
    if "none" in prompts:  # the emulator always needs the user's click
        return fail("interaction_required")
    consent_id = secrets.token_urlsafe(16)
    with state.lock:
        state.pending[consent_id] = PendingConsent(
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            scopes=scopes,
            state=oauth_state,
            code_challenge=challenge,
            code_challenge_method=method,
            offline=access_type == "offline",
            force_consent="consent" in prompts,
            include_granted_scopes=params.get("include_granted_scopes") == "true",
        )
    return _consent_page(state, request, consent_id, error=None)


def _consent(
    state: GoogleState, request: Request, form: dict[str, str], granted: list[str]
) -> Response:
    with state.lock:
        pending = state.pending.get(form.get("consent_id", ""))
    if pending is None:
        return _error_page(400, "invalid_request", "This consent request has expired.")
    if form.get("decision") != "allow":
        state.pending.pop(form["consent_id"], None)
        return _redirect(pending.redirect_uri, {"error": "access_denied", "state": pending.state})
    email = (form.get("email") or form.get("account") or "").strip().lower()
    if email not in state.accounts:
        return _consent_page(state, request, form["consent_id"], error="Unknown account.")
    with state.lock:
        del state.pending[form["consent_id"]]
        # Google hands out a refresh token the first time offline access is granted.
        first_consent = (email, pending.client_id) not in state.consented
        if pending.offline:
            state.consented.add((email, pending.client_id))
        scopes = [s for s in pending.scopes if s in SIGN_IN_SCOPES or s in granted]
        grant = state.grants.get(_grant_id(email, pending.client_id))
        if grant is not None and pending.include_granted_scopes:
            scopes += [s for s in grant.scopes if s not in scopes]
        code = "4/" + secrets.token_urlsafe(24)
        state.codes[code] = AuthCode(
            client_id=pending.client_id,
            redirect_uri=pending.redirect_uri,
            email=email,
            scopes=scopes,
            code_challenge=pending.code_challenge,
            code_challenge_method=pending.code_challenge_method,
            issue_refresh_token=pending.offline and (first_consent or pending.force_consent),
            expires_at=state.clock() + _CODE_TTL,
        )
    return _redirect(
        pending.redirect_uri, {"code": code, "scope": " ".join(scopes), "state": pending.state}
    )


def _consent_page(
    state: GoogleState, request: Request, consent_id: str, *, error: str | None
) -> HTMLResponse:
    pending = state.pending[consent_id]
    esc = html.escape
    options = "".join(
        f'<option value="{esc(email)}">{esc(email)}</option>' for email in sorted(state.accounts)
    )
    scopes = "".join(
        f"<li>{esc(scope)}</li>"
        if scope in SIGN_IN_SCOPES
        else f'<li><label><input type="checkbox" name="granted" value="{esc(scope)}" checked> '
        f"{esc(scope)}</label></li>"
        for scope in pending.scopes
    )
    notice = f'<p role="alert">{esc(error)}</p>' if error else ""
    action = esc(str(request.url_for("google_consent")))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Sign in - Google Accounts (emulator)</title></head>
<body>
<h1>{esc(pending.client_id)} wants to access your Google Account</h1>
{notice}
<form method="post" action="{action}">
  <ul>{scopes}</ul>
  <input type="hidden" name="consent_id" value="{esc(consent_id)}">
  <label>Account <select name="account">{options}</select></label>
  <label>or email <input type="email" name="email" autocomplete="off"></label>
  <button type="submit" name="decision" value="allow">Allow</button>
  <button type="submit" name="decision" value="deny">Deny</button>
</form>
</body></html>"""
    return HTMLResponse(page, status_code=400 if error else 200)


def _error_page(status: int, error: str, description: str) -> HTMLResponse:
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Error</title></head>"
        f"<body><h1>Error {status}: {html.escape(error)}</h1>"
        f"<p>{html.escape(description)}</p></body></html>"
    )
    return HTMLResponse(body, status_code=status)


def _redirect(redirect_uri: str, params: dict[str, str | None]) -> RedirectResponse:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(f"{redirect_uri}{separator}{query}", status_code=302)


# --- token endpoint ----------------------------------------------------------------------


def _token(state: GoogleState, request: Request, form: dict[str, str]) -> Response:
    if form.get("grant_type") == JWT_BEARER:  # a service account: the assertion authenticates
        return jwt_bearer_grant(state, form)
    client_id, client_secret = _client_auth(request, form)
    client = state.clients.get(client_id)
    if client is None or not hmac.compare_digest(client.client_secret, client_secret):
        return oauth_error(401, "invalid_client", "Unauthorized")
    grant_type = form.get("grant_type")
    if grant_type == "authorization_code":
        return _exchange_code(state, client_id, client_secret, form)
    if grant_type == "refresh_token":
        return _refresh(state, client_id, client_secret, form)
    return oauth_error(400, "unsupported_grant_type", "Invalid grant_type: " + str(grant_type))


def _exchange_code(
    state: GoogleState, client_id: str, client_secret: str, form: dict[str, str]
) -> Response:
    with state.lock:
        code = state.codes.pop(form.get("code", ""), None)  # single use, even on failure
    if code is None or code.client_id != client_id or code.expires_at <= state.clock():
        return oauth_error(400, "invalid_grant", "Malformed auth code.")
    if form.get("redirect_uri") != code.redirect_uri:
        return oauth_error(400, "redirect_uri_mismatch", "Bad Request")
    if code.code_challenge is not None:
        verifier = form.get("code_verifier")
        if not verifier:
            return oauth_error(400, "invalid_grant", "Missing code verifier.")
        if not hmac.compare_digest(
            _challenge(verifier, code.code_challenge_method), code.code_challenge
        ):
            return oauth_error(400, "invalid_grant", "Invalid code verifier.")
    with state.lock:
        grant_id = _grant_id(code.email, client_id)
        state.grants[grant_id] = Grant(grant_id, client_id, code.email, code.scopes)
        access, refresh = state.issue_tokens(grant_id, with_refresh=code.issue_refresh_token)
        grant = state.grants[grant_id]
    return _token_response(state, grant, access, refresh, client_secret)


def _refresh(
    state: GoogleState, client_id: str, client_secret: str, form: dict[str, str]
) -> Response:
    with state.lock:
        grant_id = state.refresh_tokens.get(form.get("refresh_token", ""))
        grant = state.grants.get(grant_id) if grant_id else None
        if grant is None or grant.client_id != client_id:
            return oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        access, _ = state.issue_tokens(grant.grant_id, with_refresh=False)
    return _token_response(state, grant, access, None, client_secret)


def _token_response(
    state: GoogleState, grant: Grant, access: str, refresh: str | None, client_secret: str
) -> JSONResponse:
    body: dict[str, Any] = {
        "access_token": access,
        "expires_in": state.access_token_ttl - 1,
        "scope": " ".join(grant.scopes),
        "token_type": "Bearer",
    }
    if refresh is not None:
        body["refresh_token"] = refresh
    if "openid" in grant.scopes:
        body["id_token"] = _id_token(state, grant, client_secret)
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _id_token(state: GoogleState, grant: Grant, client_secret: str) -> str:
    now = int(state.clock())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "azp": grant.client_id,
        "aud": grant.client_id,
        "sub": state.accounts[grant.email].subject,
        "iat": now,
        "exp": now + 3600,
    }
    if "https://www.googleapis.com/auth/userinfo.email" in grant.scopes:
        claims["email"] = grant.email
        claims["email_verified"] = True
    header = {"alg": "HS256", "typ": "JWT"}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(client_secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _revoke(state: GoogleState, token: str) -> Response:
    with state.lock:
        access = state.access_tokens.get(token)
        grant_id = access.grant_id if access else state.refresh_tokens.get(token)
        if grant_id is None:
            return oauth_error(400, "invalid_token", "Token expired or revoked")
        state.revoke_grant(grant_id)
    return Response(status_code=200)


def _client_auth(request: Request, form: dict[str, str]) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:]).decode()
        except ValueError:
            return "", ""
        client_id, _, secret = decoded.partition(":")
        return client_id, secret
    return form.get("client_id", ""), form.get("client_secret", "")


def _challenge(verifier: str, method: str) -> str:
    if method == "plain":
        return verifier
    return _b64(hashlib.sha256(verifier.encode()).digest())


def _grant_id(email: str, client_id: str) -> str:
    return f"{email} {client_id}"  # one grant per user and client, as at Google


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
