"""The Microsoft identity platform (v2.0 endpoints) as msal uses it.

OIDC discovery, an HTML consent page where the tester picks a seeded account, and the
token endpoint for the authorization-code (PKCE, single use) and refresh-token grants.
Refresh tokens rotate on every use like Microsoft's, and the previous one is refused
afterwards, so a client that forgets to persist the new cache is caught by the tests.
Errors use Microsoft's shape (``error``, ``error_description`` starting with an AADSTS
code, ``error_codes``).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from emulators.microsoft_org import client_credentials
from emulators.microsoft_state import (
    CONSUMER_TENANT_ID,
    Account,
    CodeGrant,
    MicrosoftState,
    RefreshGrant,
)

_RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
_CODE_LIFETIME = 600.0


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _aad_error(status: int, error: str, code: int, text: str) -> JSONResponse:
    return JSONResponse(
        {
            "error": error,
            "error_description": f"AADSTS{code}: {text}",
            "error_codes": [code],
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        },
        status_code=status,
    )


def _tenant_accepts(tenant: str, account: Account) -> bool:
    if tenant == "common":
        return True
    if tenant == "consumers":
        return account.personal
    if tenant == "organizations":
        return not account.personal
    return tenant.lower() == account.tenant_id


def _error_page(message: str, status: int = 400) -> HTMLResponse:
    body = (
        "<!doctype html><html><head><title>Sign in to your account</title></head><body>"
        f"<h1>Sorry, but we're having trouble signing you in.</h1><p>{html.escape(message)}</p>"
        "</body></html>"
    )
    return HTMLResponse(body, status_code=status)


def _consent_page(
    state: MicrosoftState, tenant: str, request_id: str, params: dict[str, str]
) -> str:
    accounts = [a for a in state.accounts.values() if _tenant_accepts(tenant, a)]
    hint = params.get("login_hint", "").lower()
    rows = []
    for index, account in enumerate(accounts):
        kind = "Personal account" if account.personal else "Work or school account"
        checked = " checked" if account.email.lower() == hint or (not hint and index == 0) else ""
        rows.append(
            "<li><label><input type='radio' name='account' "
            f"value='{html.escape(account.email, quote=True)}'{checked}> "
            f"{html.escape(account.name)} &lt;{html.escape(account.email)}&gt; ({kind})"
            "</label></li>"
        )
    scopes = "".join(f"<li>{html.escape(s)}</li>" for s in params.get("scope", "").split() if s)
    accounts_html = "".join(rows) or "<li>No accounts are seeded in the emulator.</li>"
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<title>Permissions requested</title></head><body>"
        "<h1>Pick an account</h1>"
        f"<p>Application <code>{html.escape(params.get('client_id', ''))}</code> "
        "would like to:</p>"
        f"<ul class='scopes'>{scopes}</ul>"
        "<form method='post'>"
        f"<input type='hidden' name='request' value='{html.escape(request_id, quote=True)}'>"
        f"<ul class='accounts'>{accounts_html}</ul>"
        "<button type='submit' name='action' value='accept'>Accept</button> "
        "<button type='submit' name='action' value='cancel'>Cancel</button>"
        "</form></body></html>"
    )


def _redirect(redirect_uri: str, params: dict[str, str], response_mode: str) -> Response:
    if response_mode == "form_post":
        fields = "".join(
            f"<input type='hidden' name='{html.escape(k, quote=True)}' "
            f"value='{html.escape(v, quote=True)}'>"
            for k, v in params.items()
        )
        body = (
            "<!doctype html><html><body onload='document.forms[0].submit()'>"
            f"<form method='post' action='{html.escape(redirect_uri, quote=True)}'>{fields}"
            "<noscript><button type='submit'>Continue</button></noscript></form></body></html>"
        )
        return HTMLResponse(body)
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(redirect_uri + separator + urlencode(params), status_code=302)


def _client_info(account: Account) -> str:
    return _b64url(json.dumps({"uid": account.oid, "utid": account.tenant_id}).encode())


def _id_token(
    issuer_origin: str, state: MicrosoftState, account: Account, nonce: str | None
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "aud": state.client_id,
        "iss": f"{issuer_origin}/{account.tenant_id}/v2.0",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "name": account.name,
        "oid": account.oid,
        # The sign-in name (UPN); for work accounts not necessarily the mailbox address.
        "preferred_username": account.email,
        "email": account.mail or account.email,
        "sub": _b64url(hashlib.sha256((account.oid + state.client_id).encode()).digest()),
        "tid": account.tenant_id,
        "ver": "2.0",
    }
    if nonce:
        claims["nonce"] = nonce
    header = {"typ": "JWT", "alg": "RS256", "kid": "emulator"}
    return ".".join(
        (
            _b64url(json.dumps(header).encode()),
            _b64url(json.dumps(claims).encode()),
            _b64url(secrets.token_bytes(32)),  # unsigned: msal does not validate id tokens
        )
    )


def _token_response(
    request: Request, state: MicrosoftState, account: Account, grant: RefreshGrant
) -> JSONResponse:
    refresh = "M.C" + secrets.token_urlsafe(48)
    state.refresh_tokens[refresh] = grant
    scopes = [s for s in grant.scope.split() if s not in _RESERVED_SCOPES]
    return JSONResponse(
        {
            "token_type": "Bearer",
            "scope": " ".join(scopes),
            "expires_in": state.access_token_lifetime,
            "ext_expires_in": state.access_token_lifetime,
            "access_token": state.issue_access_token(account.email),
            "refresh_token": refresh,
            "id_token": _id_token(_origin(request), state, account, grant.nonce),
            "client_info": _client_info(account),
        },
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def identity_routes(state: MicrosoftState) -> list[Route]:
    """Routes under ``/{tenant}/``: discovery, authorize (GET page, POST consent), token."""

    async def openid_configuration(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        base = f"{_origin(request)}/{tenant}"
        # The discovery document names the sign-in page's URL (authorization_endpoint,
        # https://learn.microsoft.com/en-us/entra/identity-platform/v2-protocols-oidc);
        # the emulator may put it on its plain-http companion (start_microsoft_emulator).
        browser_base = f"{state.browser_origin or _origin(request)}/{tenant}"
        issuer_tenant = tenant if _is_guid(tenant) else "{tenantid}"
        return JSONResponse(
            {
                "issuer": f"{_origin(request)}/{issuer_tenant}/v2.0",
                "authorization_endpoint": f"{browser_base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "response_types_supported": ["code", "id_token", "code id_token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "client_secret_basic",
                ],
                "code_challenge_methods_supported": ["plain", "S256"],
                "tenant_region_scope": None,
            }
        )

    async def keys(request: Request) -> Response:
        return JSONResponse({"keys": []})

    async def authorize(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        params = dict(request.query_params)
        if params.get("client_id") != state.client_id:
            return _error_page(
                "AADSTS700016: Application with identifier was not found in the directory."
            )
        if not params.get("redirect_uri", "").startswith(("https://", "http://")):
            return _error_page("AADSTS900144: The request body must contain redirect_uri.")
        if params.get("response_type") != "code":
            return _error_page("AADSTS700054: response_type is not enabled for the application.")
        request_id = secrets.token_urlsafe(16)
        with state.lock:
            state.pending_consents[request_id] = dict(params, tenant=tenant)
            page = _consent_page(state, tenant, request_id, params)
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    async def consent(request: Request) -> Response:
        form = await request.form()
        request_id = str(form.get("request", ""))
        with state.lock:
            params = state.pending_consents.pop(request_id, None)
            if params is None:
                return _error_page("AADSTS90014: The sign-in request expired; start again.")
            redirect_uri = params["redirect_uri"]
            mode = params.get("response_mode", "query")
            reply: dict[str, str] = {}
            if form.get("action") != "accept":
                reply = {
                    "error": "access_denied",
                    "error_description": "AADSTS65004: User declined to consent to access the app.",
                }
            else:
                account = state.accounts.get(str(form.get("account", "")).lower())
                if account is None or not _tenant_accepts(params["tenant"], account):
                    return _error_page("AADSTS50034: The user account does not exist.")
                code = "M.C" + secrets.token_urlsafe(32)
                state.codes[code] = CodeGrant(
                    email=account.email,
                    client_id=params["client_id"],
                    redirect_uri=redirect_uri,
                    code_challenge=params.get("code_challenge"),
                    code_challenge_method=params.get("code_challenge_method", "plain"),
                    nonce=params.get("nonce"),
                    scope=params.get("scope", ""),
                    tenant_id=account.tenant_id,
                    expires_at=time.time() + _CODE_LIFETIME,
                )
                reply = {"code": code}
                if params.get("client_info") == "1":
                    reply["client_info"] = _client_info(account)
                reply["session_state"] = str(uuid.uuid4())
            if "state" in params:
                reply["state"] = params["state"]
        return _redirect(redirect_uri, reply, mode)

    async def token(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            decoded = base64.b64decode(basic[6:]).decode()
            client_id, _, client_secret = decoded.partition(":")
        if client_id != state.client_id:
            return _aad_error(
                400, "unauthorized_client", 700016, "Application was not found in the directory."
            )
        if client_secret != state.client_secret:
            return _aad_error(401, "invalid_client", 7000215, "Invalid client secret provided.")
        if state.client_secret_expired:
            # What an app registration whose secret passed its end date gets, for every
            # grant: AADSTS7000222 with this text, as public clients quote it (the Entra
            # error-code list names the code). Status 401 as for the other invalid_client
            # errors; the exact status is not documented.
            return _aad_error(
                401,
                "invalid_client",
                7000222,
                f"The provided client secret keys for app '{state.client_id}' are expired. "
                "Visit the Azure portal to create new keys for your app.",
            )
        grant_type = form.get("grant_type")
        with state.lock:
            if grant_type == "authorization_code":
                return _redeem_code(request, state, form)
            if grant_type == "refresh_token":
                return _redeem_refresh(request, state, form)
            if grant_type == "client_credentials":
                return client_credentials(state, request.path_params["tenant"], form)
        return _aad_error(
            400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
        )

    return [
        Route("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration),
        Route("/{tenant}/discovery/v2.0/keys", keys),
        Route("/{tenant}/oauth2/v2.0/authorize", authorize, methods=["GET"]),
        Route("/{tenant}/oauth2/v2.0/authorize", consent, methods=["POST"]),
        Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
    ]


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _pkce_ok(grant: CodeGrant, verifier: str | None) -> bool:
    if grant.code_challenge is None:
        return True
    if verifier is None:
        return False
    if grant.code_challenge_method == "S256":
        expected = _b64url(hashlib.sha256(verifier.encode()).digest())
    else:
        expected = verifier
    return secrets.compare_digest(expected, grant.code_challenge)


def _redeem_code(request: Request, state: MicrosoftState, form: dict[str, str]) -> Response:
    code = form.get("code", "")
    if code in state.redeemed_codes:
        return _aad_error(
            400, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed."
        )
    grant = state.codes.pop(code, None)
    if grant is None or grant.expires_at < time.time():
        return _aad_error(
            400,
            "invalid_grant",
            70008,
            "The provided authorization code or refresh token has expired due to inactivity.",
        )
    state.redeemed_codes.add(code)
    if grant.client_id != form.get("client_id"):
        return _aad_error(400, "invalid_grant", 70000, "The provided grant is for another client.")
    if form.get("redirect_uri") != grant.redirect_uri:
        return _aad_error(
            400, "invalid_grant", 500117, "The reply uri specified in the request isn't expected."
        )
    if not _pkce_ok(grant, form.get("code_verifier")):
        return _aad_error(
            400, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge."
        )
    account = state.accounts.get(grant.email.lower())
    if account is None:
        return _aad_error(400, "invalid_grant", 50034, "The user account does not exist.")
    scope = form.get("scope") or grant.scope
    return _token_response(
        request, state, account, RefreshGrant(account.email, grant.client_id, scope, grant.nonce)
    )


def _redeem_refresh(request: Request, state: MicrosoftState, form: dict[str, str]) -> Response:
    grant = state.refresh_tokens.pop(form.get("refresh_token", ""), None)  # rotation
    account = state.accounts.get(grant.email.lower()) if grant else None
    if grant is None or account is None or grant.client_id != form.get("client_id"):
        return _aad_error(
            400,
            "invalid_grant",
            70008,
            "The provided authorization code or refresh token has expired due to inactivity.",
        )
    scope = form.get("scope") or grant.scope
    return _token_response(
        request, state, account, RefreshGrant(account.email, grant.client_id, scope)
    )


__all__ = ["CONSUMER_TENANT_ID", "identity_routes"]
