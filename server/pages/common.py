"""What every page handler shares: the viewer, rendering, redirects and notices."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from server.services.people.sessions import Viewer
from server.wiring import AppServices

# Notices are chosen by code, never echoed from the URL, so a link cannot inject text.
NOTICES: dict[str, str] = {
    "signed_out": "You are signed out.",
    "profile_saved": "Your profile is saved.",
    "password_changed": "Your password is changed. Other sessions were signed out.",
    "password_changed_everywhere": "Your password is changed. You are signed out everywhere "
    "else and every API token is revoked.",
    "token_revoked": "The API token is revoked.",
    "acting_started": "You are now working on behalf of this participant.",
    "acting_ended": "You are back to your own account.",
    "calendar_connected": "Your calendar is connected.",
    "calendar_disconnected": "Your calendar is disconnected. Tandem revoked its access and "
    "deleted your busy times.",
    "calendar_disconnected_icloud": "Your calendar is disconnected and Tandem deleted your "
    "password and busy times. Apple offers no way for apps to revoke an app-specific "
    "password: revoke it yourself at account.apple.com (Sign-In and Security, "
    "App-Specific Passwords).",
    "settings_saved": "Program settings are saved.",
    "meeting_scheduled": "The meeting is booked and the invitations are on their way.",
    "meeting_updated": "The meeting is changed and everyone was sent the update.",
    "meeting_cancelled": "The meeting is cancelled and everyone was told.",
    "answer_saved": "Your answer is saved.",
    "poll_created": "Your poll is created and the invitees were emailed a link.",
    "poll_answered": "Your answers are saved. You can change them until the poll closes.",
    "comment_added": "Your comment is posted.",
    "poll_finalized": "The poll is finalized and the meeting is scheduled.",
    "oauth_app_saved": "Your organization's app is saved. New connections go through it.",
    "oauth_app_removed": "Your organization's app is removed. New connections go through "
    "Tandem's app.",
}


class LoginRequired(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def services(request: Request) -> AppServices:
    svc: AppServices = request.app.state.services
    return svc


def viewer(request: Request) -> Viewer:
    current: Viewer | None = request.state.viewer
    if current is None:
        raise LoginRequired(request.url.path)
    return current


def safe_next(raw: str | None) -> str:
    """A same-site path to go to after login; anything else (//host, schemes) becomes /."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return "/"
    return raw


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    env = services(request).templates
    current: Viewer | None = request.state.viewer
    notice = NOTICES.get(request.query_params.get("notice", ""))
    data: dict[str, Any] = {
        "request": request,
        "viewer": current,
        "csrf_token": request.state.csrf_token,
        "notice": notice,
        "zone": current.user.time_zone if current else "UTC",
    }
    data.update(context or {})
    html = env.get_template(template).render(data)
    response = HTMLResponse(html, status_code=status_code)
    response.headers["Vary"] = "HX-Request, Cookie"
    return response


def redirect(url: str, *, request: Request | None = None) -> Response:
    """A 303 after a successful form post; htmx requests get ``HX-Redirect`` instead."""
    if request is not None and is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)
