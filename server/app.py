"""Builds the Starlette application: middleware, page routes, /graphql, webhooks, static."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from server.config import Settings
from server.jobs.worker import run_jobs
from server.pages import (
    admin,
    admin_calendars,
    admin_pairs,
    admin_people,
    auth,
    calendar,
    home,
    integrations,
    oauth_apps,
    profile,
    program_settings,
    schedule,
)
from server.pages import groups as group_pages
from server.pages import meeting_activity as meeting_activity_pages
from server.pages import meetings as meeting_pages
from server.pages import polls as poll_pages
from server.pages import setup as setup_pages
from server.pages.common import LoginRequired, render
from server.web import webhooks
from server.web.graphql_view import TandemGraphQL
from server.web.guard import BodyTooLarge, RequestGuard
from server.web.http_server import settle_heap
from server.web.templating import STATIC_DIR
from server.wiring import AppServices, build_services, close_services

log = logging.getLogger("tandem")


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": "/login"})
    return RedirectResponse(f"/login?next={exc.next_path}", status_code=303)


async def _body_too_large(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("Request body too large.", status_code=413)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headings = {404: "Not found", 405: "Not allowed", 403: "Forbidden"}
    heading = headings.get(exc.status_code, "Something went wrong")
    message = {
        404: "This page does not exist, or it is not yours to see.",
        405: "This address does not accept that kind of request.",
    }.get(exc.status_code, "Please try again.")
    return render(
        request,
        "pages/error.html",
        {"heading": heading, "message": message},
        status_code=exc.status_code,
    )


def admin_routes() -> list[Route]:
    """Administration of a program's people, pairs and groups."""
    people = "/admin/programs/{program_id}/people"
    person = people + "/{user_id}"
    pairs = "/admin/programs/{program_id}/connections"
    member = pairs + "/{connection_id}/members/{user_id}/remove"
    return [
        Route(people, admin_people.people_page, methods=["GET"]),
        Route(people, admin_people.create_person, methods=["POST"]),
        Route(people + "/add", admin_people.add_existing, methods=["POST"]),
        Route(person + "/roles", admin_people.add_role, methods=["POST"]),
        Route(person + "/roles/remove", admin_people.confirm_remove_role, methods=["GET"]),
        Route(person + "/roles/remove", admin_people.remove_role, methods=["POST"]),
        Route(person + "/deactivate", admin_people.confirm_deactivate, methods=["GET"]),
        Route(person + "/deactivate", admin_people.deactivate, methods=["POST"]),
        Route(person + "/reactivate", admin_people.reactivate, methods=["POST"]),
        Route(pairs, admin_pairs.connections_page, methods=["GET"]),
        Route(pairs + "/pairs", admin_pairs.create_pair, methods=["POST"]),
        Route(pairs + "/groups", admin_pairs.create_group, methods=["POST"]),
        Route(pairs + "/{connection_id}/members", admin_pairs.add_member, methods=["POST"]),
        Route(member, admin_pairs.confirm_remove_member, methods=["GET"]),
        Route(member, admin_pairs.remove_member, methods=["POST"]),
    ]


GRAPHQL_PATH = "/graphql"
SCHEDULE_PATH = "/connections/{connection_id}/schedule"
SESSION_PATHS = (GRAPHQL_PATH, SCHEDULE_PATH)
"""Requests to these go on in the request guard's database session (one per request, not
two): the API, and the week page, the page asked most often."""


def routes(services: AppServices) -> list[Any]:
    # Starlette tries the routes in order, a regular expression each: the API and the
    # week page, asked far more often than any other path, come first (no other route
    # matches their paths, so the order changes nothing else).
    return [
        Route("/healthz", healthz),
        Route(GRAPHQL_PATH, TandemGraphQL(services), methods=["GET", "POST"]),
        Route(SCHEDULE_PATH, schedule.schedule, methods=["GET"]),
        Route("/", home.home),
        Route("/webhooks/google", webhooks.google, methods=["POST"]),
        Route("/webhooks/microsoft", webhooks.microsoft, methods=["POST"]),
        Route("/login", auth.login_form, methods=["GET"]),
        Route("/login", auth.login, methods=["POST"]),
        Route("/logout", auth.logout, methods=["POST"]),
        Route("/onboarding", profile.onboarding, methods=["GET"]),
        Route("/onboarding", profile.complete_onboarding, methods=["POST"]),
        Route("/profile/edit", profile.edit, methods=["GET"]),
        Route("/profile/edit", profile.save_profile, methods=["POST"]),
        Route("/profile/password", profile.change_password, methods=["POST"]),
        Route("/profile/tokens", profile.create_token, methods=["POST"]),
        Route("/profile/tokens/{token_id}/revoke", profile.revoke_token, methods=["POST"]),
        Route("/calendar/connect/icloud", calendar.connect_icloud, methods=["POST"]),
        Route("/calendar/connect/{provider}", calendar.connect_page, methods=["GET"]),
        Route("/calendar/connect/{provider}", calendar.start, methods=["POST"]),
        Route("/calendar/callback/{provider}", calendar.callback, methods=["GET"]),
        Route("/calendar/disconnect", calendar.disconnect, methods=["POST"]),
        Route("/admin", admin.admin_home, methods=["GET"]),
        Route("/admin/act-as", admin.act_as, methods=["POST"]),
        Route("/admin/integrations", integrations.integrations_page, methods=["GET"]),
        Route("/admin/integrations/switch", integrations.switch, methods=["POST"]),
        Route(
            "/admin/integrations/microsoft/start", integrations.start_microsoft, methods=["POST"]
        ),
        Route(
            "/admin/integrations/microsoft/callback",
            integrations.microsoft_callback,
            methods=["GET"],
        ),
        Route("/admin/integrations/google/key", integrations.google_key, methods=["POST"]),
        Route("/admin/integrations/google/verify", integrations.google_verify, methods=["POST"]),
        Route(
            "/admin/integrations/exchange_onprem/configure",
            integrations.onprem_configure,
            methods=["POST"],
        ),
        Route("/admin/integrations/{kind}/disable", integrations.disable, methods=["POST"]),
        Route("/admin/act-as/end", admin.end_acting, methods=["POST"]),
        Route(oauth_apps.PATH, oauth_apps.apps_page, methods=["GET"]),
        Route(f"{oauth_apps.PATH}/{{provider}}", oauth_apps.save_app, methods=["POST"]),
        Route(f"{oauth_apps.PATH}/{{provider}}/remove", oauth_apps.remove_app, methods=["POST"]),
        Route(
            "/admin/programs/{program_id}/settings",
            program_settings.settings_page,
            methods=["GET"],
        ),
        Route(
            "/admin/programs/{program_id}/settings",
            program_settings.save_settings,
            methods=["POST"],
        ),
        Route("/groups/{group_id}", group_pages.group_page, methods=["GET"]),
        Route("/groups/{group_id}/polls/new", poll_pages.new_poll, methods=["GET"]),
        Route("/groups/{group_id}/polls/new", poll_pages.create_poll, methods=["POST"]),
        Route("/polls/{poll_id}", poll_pages.poll_page, methods=["GET"]),
        Route("/polls/{poll_id}/tally", poll_pages.tally, methods=["GET"]),
        Route("/polls/{poll_id}/answers", poll_pages.answer, methods=["POST"]),
        Route("/polls/{poll_id}/comments", poll_pages.comment_list, methods=["GET"]),
        Route("/polls/{poll_id}/comments", poll_pages.comment, methods=["POST"]),
        Route("/polls/{poll_id}/finalize", poll_pages.confirm_finalize, methods=["GET"]),
        Route("/polls/{poll_id}/finalize", poll_pages.finalize, methods=["POST"]),
        Route(
            "/connections/{connection_id}/meetings/new", meeting_pages.new_meeting, methods=["GET"]
        ),
        Route(
            "/connections/{connection_id}/meetings", meeting_pages.create_meeting, methods=["POST"]
        ),
        Route("/meetings", meeting_pages.my_meetings, methods=["GET"]),
        Route("/meetings/{meeting_id}", meeting_pages.meeting_detail, methods=["GET"]),
        Route("/meetings/{meeting_id}/invite.ics", meeting_pages.meeting_ics, methods=["GET"]),
        Route("/meetings/{meeting_id}/edit", meeting_pages.edit_meeting, methods=["GET"]),
        Route("/meetings/{meeting_id}/edit", meeting_pages.save_meeting, methods=["POST"]),
        Route("/meetings/{meeting_id}/cancel", meeting_pages.confirm_cancel, methods=["GET"]),
        Route("/meetings/{meeting_id}/cancel", meeting_pages.cancel_meeting, methods=["POST"]),
        Route("/meetings/{meeting_id}/respond", meeting_pages.respond, methods=["POST"]),
        Route("/rsvp/{token}", meeting_pages.rsvp_page, methods=["GET"]),
        Route("/rsvp/{token}", meeting_pages.rsvp_confirm, methods=["POST"]),
        Route(
            "/admin/programs/{program_id}/activity",
            meeting_activity_pages.activity,
            methods=["GET"],
        ),
        Route(
            "/admin/programs/{program_id}/calendars",
            admin_calendars.program_calendars,
            methods=["GET"],
        ),
        *admin_routes(),
        Route("/setup/{setup_token}", setup_pages.setup_form, methods=["GET"]),
        Route("/setup/{setup_token}", setup_pages.complete, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]


def create_app(
    settings: Settings | None = None, *, services: AppServices | None = None
) -> Starlette:
    """The ASGI app. Tests pass ready ``services``; otherwise the lifespan builds and closes them."""
    settings = settings or (services.settings if services else Settings())
    owned = services is None
    shared = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The embedded default runs background jobs in-process; tests drive jobs directly.
        jobs = (
            asyncio.create_task(run_jobs(shared, install_signal_handlers=False))
            if owned and settings.run_jobs_in_process and settings.env != "test"
            else None
        )
        if owned:
            settle_heap()
        try:
            yield
        finally:
            if jobs is not None:
                jobs.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await jobs
            if owned:
                await close_services(shared)

    app = Starlette(
        routes=routes(shared),
        middleware=[Middleware(RequestGuard, services=shared, session_paths=SESSION_PATHS)],
        exception_handlers={
            LoginRequired: _login_required,
            BodyTooLarge: _body_too_large,
            HTTPException: _http_error,
            # Unhandled errors become a 500 page inside RequestGuard, with every security
            # header and without the CSRF token.
        },
        lifespan=lifespan,
    )
    app.state.services = shared
    return app
