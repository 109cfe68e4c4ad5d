"""Sign in and sign out."""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response

from server.pages.common import redirect, render, safe_next, services
from server.services.errors import DomainError
from server.services.people import accounts, sessions
from server.web.guard import session_cookie_name


async def login_form(request: Request) -> Response:
    if request.state.viewer is not None:
        return redirect("/")
    return render(
        request,
        "pages/login.html",
        {"email": "", "next_path": safe_next(request.query_params.get("next"))},
    )


async def login(request: Request) -> Response:
    svc = services(request)
    form = await request.form()
    email = str(form.get("email", ""))[:320]
    password = str(form.get("password", ""))[:1024]
    next_path = safe_next(str(form.get("next", "/")))
    client = request.client.host if request.client else "unknown"
    settings = svc.settings
    async with svc.db.session() as db:
        try:
            user = await accounts.authenticate(
                db,
                email,
                password,
                client_key=client,
                max_attempts=settings.login_attempts_per_window,
                window=timedelta(seconds=settings.login_window_seconds),
            )
        except DomainError as exc:
            status = 429 if exc.code == "rate_limited" else 401
            return render(
                request,
                "pages/login.html",
                {"error": exc.message, "email": email, "next_path": next_path},
                status_code=status,
            )
        old = request.state.user_session
        if old is not None:  # a fresh session id on every login
            await sessions.end_session(db, old.id)
        raw, _row = await sessions.start_session(
            db, user, lifetime=timedelta(seconds=settings.session_max_age_seconds)
        )
        await db.commit()
        destination = next_path if user.profile_completed else "/onboarding"
    response = redirect(destination)
    set_session_cookie(response, raw, request)
    return response


async def logout(request: Request) -> Response:
    svc = services(request)
    row = request.state.user_session
    if row is not None:
        async with svc.db.session() as db:
            await sessions.end_session(db, row.id)
            await db.commit()
    response = redirect("/login?notice=signed_out")
    response.delete_cookie(
        session_cookie_name(svc.settings.secure_cookies),
        path="/",
        secure=svc.settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )
    return response


def set_session_cookie(response: Response, raw: str, request: Request) -> None:
    settings = services(request).settings
    response.set_cookie(
        session_cookie_name(settings.secure_cookies),
        raw,
        max_age=settings.session_max_age_seconds,
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )
