"""The one-time account setup link: a person an administrator created chooses their
password, is signed in, and continues with first-time onboarding (name, zone, calendar)."""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response

from server.pages.auth import set_session_cookie
from server.pages.common import redirect, render, services
from server.services.errors import DomainError, NotFound
from server.services.people import sessions, setup

INVALID = (
    "This setup link has been used, has expired or is not valid. Ask your program's "
    "administrator for a new one, or sign in if you already chose a password."
)


def _key(request: Request) -> bytes:
    return setup.setup_key(services(request).secrets.master_key())


async def setup_form(request: Request) -> Response:
    token = request.path_params["setup_token"][:2048]
    async with services(request).db.session() as db:
        try:
            user = await setup.read_setup_link(db, _key(request), token)
        except NotFound:
            return render(request, "pages/setup.html", {"invalid": INVALID}, status_code=404)
    return render(request, "pages/setup.html", {"person": user, "token": token})


async def complete(request: Request) -> Response:
    svc = services(request)
    token = request.path_params["setup_token"][:2048]
    form = await request.form()
    password = str(form.get("password", ""))[:1024]
    confirm = str(form.get("confirm", ""))[:1024]
    async with svc.db.session() as db:
        try:
            user = await setup.complete_setup(db, _key(request), token, password, confirm)
        except NotFound:
            return render(request, "pages/setup.html", {"invalid": INVALID}, status_code=404)
        except DomainError as exc:
            person = await setup.read_setup_link(db, _key(request), token)
            return render(
                request,
                "pages/setup.html",
                {"person": person, "token": token, "error": exc.message},
                status_code=422,
            )
        old = request.state.user_session
        if old is not None:
            await sessions.end_session(db, old.id)
        raw, _row = await sessions.start_session(
            db, user, lifetime=timedelta(seconds=svc.settings.session_max_age_seconds)
        )
        await db.commit()
    response = redirect("/onboarding" if not user.profile_completed else "/")
    set_session_cookie(response, raw, request)
    return response
