"""Every page of the app, found from its router, with seeded ids to fill the paths.

The tour is what the phone-width and accessibility tests walk: a new ``GET`` route is
visited automatically, and a route that needs an id nobody seeds fails the tour rather
than being skipped quietly. ``NOT_PAGES`` lists the ``GET`` routes that are not pages,
each with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.async_api import Page
from sqlmodel import select
from starlette.routing import Route

from server.app import routes
from server.models import PollSlot, User
from server.models.enums import AttendeeResponse, ConnectionKind, ProgramRole
from server.services.invites import make_rsvp_token
from server.services.meetings import booking
from server.services.people import accounts, mentoring, programs, setup
from server.services.people.sessions import Viewer
from server.services.polls import rules as poll_rules
from server.wiring import AppServices
from tests.conftest import create_user
from tests.scheduling_data import connect_calendar

AXE_SOURCE = (Path(__file__).parent / "vendor" / "axe-4.14.1.min.js").read_text()

NOT_PAGES = {
    "/healthz": "JSON for load balancers",
    "/graphql": "GraphiQL, the integrators' tool, has its own test",
    "/calendar/callback/{provider}": "the provider's redirect back, never opened by hand",
    "/admin/integrations/microsoft/callback": "Microsoft's admin-consent redirect back",
    "/polls/{poll_id}/tally": "a fragment of /polls/{poll_id}, polled by htmx",
    "/polls/{poll_id}/comments": "a fragment of /polls/{poll_id}, polled by htmx",
    "/meetings/{meeting_id}/invite.ics": "an iCalendar file to download, not a page",
}
ADMIN_PREFIX = "/admin"
# Organization-wide pages: global administrators (and operators) only, so a program
# administrator's refusal there is right and they are left out of that visitor's tour.
GLOBAL_ADMIN_PREFIX = "/admin/integrations"


@dataclass(frozen=True, slots=True)
class Site:
    participant: str  # email; mentor in a pair, organizer of a group
    program_admin: str
    global_admin: str
    ids: dict[str, list[str]]  # path parameter -> values to visit


async def seed_site(services: AppServices) -> Site:
    """A program with a pair and a group, a poll, a booked meeting and an RSVP link."""
    root_id = await create_user(
        services, "root@example.org", name="Root Admin", global_admin=True, operator=True
    )
    coord_id = await create_user(services, "coord@example.org", name="Cora Coordinator")
    pat_id = await create_user(services, "pat@example.org", name="Pat Participant")
    maya_id = await create_user(
        services, "maya@example.org", name="Maya Mentee", time_zone="America/New_York"
    )
    lee_id = await create_user(
        services, "lee@example.org", name="Lee Member", time_zone="Asia/Kolkata"
    )
    for person in (pat_id, maya_id):
        await connect_calendar(services, person)
    start = (datetime.now(UTC) + timedelta(days=9)).replace(
        hour=14, minute=0, second=0, microsecond=0
    )
    async with services.db.session() as db:
        root = await db.get(User, root_id)
        assert root is not None
        program = await programs.create_program(db, root, "Engineering")
        await programs.update_settings(
            db,
            root,
            program.id,
            programs.SettingsChange(group_polls_enabled=True, allow_weekends=True),
        )
        await programs.add_member(db, root, program.id, coord_id, ProgramRole.ADMIN)
        await programs.add_member(db, root, program.id, pat_id, ProgramRole.MENTOR)
        await programs.add_member(db, root, program.id, maya_id, ProgramRole.MENTEE)
        await programs.add_member(db, root, program.id, lee_id, ProgramRole.PARTICIPANT)
        pair = await mentoring.create_connection(
            db,
            root,
            program_id=program.id,
            member_ids=[pat_id, maya_id],
            kind=ConnectionKind.PAIR,
            name=None,
        )
        group = await mentoring.create_connection(
            db,
            root,
            program_id=program.id,
            member_ids=[pat_id, maya_id, lee_id],
            kind=ConnectionKind.GROUP,
            name="Thursday circle",
            organizer_id=pat_id,
        )
        await db.commit()
        program_id, pair_id, group_id = program.id, pair.id, group.id
    async with services.db.session() as db:
        pat = await db.get(User, pat_id)
        assert pat is not None
        poll = await poll_rules.create_poll(
            db,
            services.polls,
            pat,
            group_id=group_id,
            title="Circle kickoff",
            duration_minutes=60,
            slot_starts=[start + timedelta(days=1, hours=h) for h in range(3)],
        )
    async with services.db.session() as db:
        pat = await db.get(User, pat_id)
        assert pat is not None
        meeting = await booking.schedule_meeting(
            db,
            services.meetings,
            Viewer(user=pat, actor=pat),
            connection_id=pair_id,
            start=start,
            duration_minutes=30,
            title="First talk",
            check_availability=False,
        )
    token = make_rsvp_token(
        services.meetings.rsvp_key,
        meeting.id,
        "maya@example.org",
        AttendeeResponse.ACCEPTED,
        datetime.now(UTC) + timedelta(days=30),
    )
    async with services.db.session() as db:
        slot_id = (await db.exec(select(PollSlot.id).where(PollSlot.poll_id == poll.id))).first()
        newcomer = await accounts.create_user(db, email="newcomer@example.org", name="New Comer")
        await db.commit()
    setup_link = setup.make_setup_link(
        setup.setup_key(services.secrets.master_key()), services.settings.base_url, newcomer
    )
    return Site(
        participant="pat@example.org",
        program_admin="coord@example.org",
        global_admin="root@example.org",
        ids={
            "program_id": [str(program_id)],
            "connection_id": [str(pair_id)],
            "group_id": [str(group_id)],
            "poll_id": [str(poll.id)],
            "meeting_id": [str(meeting.id)],
            "token": [token],
            "provider": ["google", "microsoft", "icloud"],
            "user_id": [str(pat_id)],
            "setup_token": [setup_link.rsplit("/", 1)[1]],
            "slot_id": [str(slot_id)],
        },
    )


def page_routes(services: AppServices) -> list[str]:
    """Every ``GET`` route's path template, but the ``NOT_PAGES``."""
    found = [
        r.path
        for r in routes(services)
        if isinstance(r, Route) and r.methods is not None and "GET" in r.methods
    ]
    return sorted({path for path in found if path not in NOT_PAGES})


def expand(template: str, ids: dict[str, list[str]]) -> list[str]:
    """The concrete paths for a template; a parameter nobody seeded is an error."""
    paths = [template]
    for name in re.findall(r"{(\w+)(?::\w+)?}", template):
        if name not in ids:
            raise AssertionError(f"seed a value for {{{name}}} to visit {template}")
        paths = [
            re.sub(rf"{{{name}(?::\w+)?}}", value, path) for path in paths for value in ids[name]
        ]
    return paths


def tour(site: Site, services: AppServices) -> dict[str, list[str]]:
    """Who visits what: the participant every page but the admin ones, both admins every
    admin page (and home). ``/login`` is visited before signing in."""
    participant: list[str] = []
    admin: list[str] = ["/"]
    global_only: list[str] = []
    for template in page_routes(services):
        if template == "/login":
            continue
        paths = expand(template, site.ids)
        if template == "/polls/{poll_id}/finalize":  # the confirm step names the slot
            paths = [f"{path}?slot_id={site.ids['slot_id'][0]}" for path in paths]
        if template.startswith(GLOBAL_ADMIN_PREFIX):
            global_only.extend(paths)
        elif template.startswith(ADMIN_PREFIX):
            admin.extend(paths)
        else:
            participant.extend(paths)
    participant += ["/profile/edit?tab=profile", "/profile/edit?tab=security"]
    return {
        site.participant: participant,
        site.program_admin: admin,
        site.global_admin: admin + global_only,
    }


async def axe_violations(page: Page) -> list[str]:
    """axe-core's violations on the current page, one line each (rule, impact, targets)."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        # Evaluated through the driver: the page's CSP (rightly) refuses inline scripts.
        await page.evaluate(AXE_SOURCE)
    result = await page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return r.violations.map(v => `${v.id} (${v.impact}): ${v.help} at ` +
                v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '));
        }"""
    )
    return [str(line) for line in result]
