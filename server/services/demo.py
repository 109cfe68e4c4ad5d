"""Demo data for ``tandem demo``: an organization, its programs, pairs, a circle of six and
one newcomer who has never signed in, and two organizations to integrate (Contoso on
Microsoft 365, Fabrikam on Google Workspace)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import User
from server.models.enums import ConnectionKind, ProgramRole
from server.services.people import accounts, mentoring, programs

DEMO_PASSWORD = "tandem-demo-password"  # noqa: S105 - printed for the local demo only
NEWCOMER = "new@demo.tandem.test"


@dataclass(frozen=True, slots=True)
class DemoLogin:
    email: str
    role: str


PEOPLE = [
    ("admin@demo.tandem.test", "Ada Admin", "Europe/London", "global admin, operator"),
    ("coordinator@demo.tandem.test", "Cora Coordinator", "America/New_York", "program admin"),
    ("maya.mentor@demo.tandem.test", "Maya Mentor", "America/New_York", "mentor"),
    ("mo.mentee@demo.tandem.test", "Mo Mentee", "Europe/Berlin", "mentee"),
    ("nia.mentor@demo.tandem.test", "Nia Mentor", "Asia/Tokyo", "mentor"),
    ("noah.mentee@demo.tandem.test", "Noah Mentee", "Australia/Sydney", "mentee"),
    ("sam@demo.tandem.test", "Sam Circle", "Europe/Paris", "circle member"),
    ("kim@demo.tandem.test", "Kim Circle", "America/Chicago", "circle member"),
    ("lee@demo.tandem.test", "Lee Circle", "Asia/Kolkata", "circle member"),
    ("ana@demo.tandem.test", "Ana Circle", "America/Sao_Paulo", "circle member"),
    ("ben@demo.tandem.test", "Ben Circle", "Africa/Lagos", "circle member"),
    ("eva@demo.tandem.test", "Eva Circle", "Europe/Madrid", "circle organizer"),
    ("ines@contoso.demo.tandem.test", "Ines Contoso", "Europe/Lisbon", "Contoso mentor"),
    ("omar@contoso.demo.tandem.test", "Omar Contoso", "Asia/Dubai", "Contoso mentee"),
    ("rui@contoso.demo.tandem.test", "Rui Contoso", "Europe/Lisbon", "Contoso mentee"),
    # Never signed in: the first-login journey (profile, time zone, calendar) starts here.
    (NEWCOMER, "Noor Newcomer", "UTC", "new participant, first sign-in"),
    ("gita@fabrikam.demo.tandem.test", "Gita Fabrikam", "Asia/Kolkata", "Fabrikam mentor"),
    ("hugo@fabrikam.demo.tandem.test", "Hugo Fabrikam", "Europe/Paris", "Fabrikam mentee"),
    ("yara@fabrikam.demo.tandem.test", "Yara Fabrikam", "America/Toronto", "Fabrikam mentee"),
]
# The demo organization whose Microsoft 365 tenant the admin can integrate (Manage →
# Integrations) against the emulator: the domain, the tenant's global administrator on
# the admin-consent page, and the mailbox Tandem creates meetings in.
CONTOSO_DOMAIN = "contoso.demo.tandem.test"
CONTOSO_IT_ADMIN = f"it@{CONTOSO_DOMAIN}"
CONTOSO_SERVICE_ACCOUNT = f"tandem-mentoring@{CONTOSO_DOMAIN}"
CONTOSO_DENIED = f"rui@{CONTOSO_DOMAIN}"  # the access policy denies this mailbox
# The demo organization on Google Workspace: its domain, the account Tandem acts as (the
# meetings' organizer) and a person whose calendar the domain's sharing policy hides.
FABRIKAM_DOMAIN = "fabrikam.demo.tandem.test"
FABRIKAM_ACT_AS = f"tandem@{FABRIKAM_DOMAIN}"
FABRIKAM_DENIED = f"yara@{FABRIKAM_DOMAIN}"


async def seed(session: AsyncSession) -> list[DemoLogin]:
    """Create the demo data once; later runs leave it as it is."""
    logins = [DemoLogin(email, role) for email, _n, _z, role in PEOPLE]
    if await accounts.get_by_email(session, PEOPLE[0][0]) is not None:
        return logins
    org = await programs.organization(session)
    org.name = "Demo Mentoring Org"
    org.group_polls_enabled = True
    org.org_calendars_enabled = True  # the operator switch, so the admin can integrate
    users: dict[str, User] = {}
    for email, name, zone, role in PEOPLE:
        users[email] = await accounts.create_user(
            session,
            email=email,
            name=name,
            password=DEMO_PASSWORD,
            time_zone=zone,
            global_admin=role.startswith("global"),
            operator=role.startswith("global"),
            profile_completed=email != NEWCOMER,
        )
    admin = users[PEOPLE[0][0]]
    engineering = await programs.create_program(session, admin, "Engineering Mentorship")
    leadership = await programs.create_program(session, admin, "Leadership Circle")
    coordinator = users["coordinator@demo.tandem.test"]
    for program in (engineering, leadership):
        await programs.add_member(session, admin, program.id, coordinator.id, ProgramRole.ADMIN)
    pairs = [
        ("maya.mentor@demo.tandem.test", "mo.mentee@demo.tandem.test"),
        ("nia.mentor@demo.tandem.test", "noah.mentee@demo.tandem.test"),
    ]
    for mentor, mentee in pairs:
        await programs.add_member(
            session, admin, engineering.id, users[mentor].id, ProgramRole.MENTOR
        )
        await programs.add_member(
            session, admin, engineering.id, users[mentee].id, ProgramRole.MENTEE
        )
        await mentoring.create_connection(
            session,
            admin,
            program_id=engineering.id,
            member_ids=[users[mentor].id, users[mentee].id],
            kind=ConnectionKind.PAIR,
            name=None,
        )
    await programs.add_member(
        session, admin, engineering.id, users[NEWCOMER].id, ProgramRole.PARTICIPANT
    )
    circle = [e for e, _n, _z, role in PEOPLE if role.startswith("circle")]
    for email in circle:
        await programs.add_member(
            session, admin, leadership.id, users[email].id, ProgramRole.PARTICIPANT
        )
    await mentoring.create_connection(
        session,
        admin,
        program_id=leadership.id,
        member_ids=[users[e].id for e in reversed(circle)],
        kind=ConnectionKind.GROUP,
        name="Leadership Circle of Six",
        organizer_id=users["eva@demo.tandem.test"].id,
    )
    contoso = await programs.create_program(session, admin, "Contoso Mentoring")
    ines, omar, rui = (users[f"{n}@{CONTOSO_DOMAIN}"] for n in ("ines", "omar", "rui"))
    await programs.add_member(session, admin, contoso.id, ines.id, ProgramRole.MENTOR)
    for person in (omar, rui):
        await programs.add_member(session, admin, contoso.id, person.id, ProgramRole.MENTEE)
        await mentoring.create_connection(
            session,
            admin,
            program_id=contoso.id,
            member_ids=[ines.id, person.id],
            kind=ConnectionKind.PAIR,
            name=None,
        )
    fabrikam = await programs.create_program(session, admin, "Fabrikam Mentoring")
    gita, hugo, yara = (users[f"{n}@{FABRIKAM_DOMAIN}"] for n in ("gita", "hugo", "yara"))
    await programs.add_member(session, admin, fabrikam.id, gita.id, ProgramRole.MENTOR)
    for person in (hugo, yara):
        await programs.add_member(session, admin, fabrikam.id, person.id, ProgramRole.MENTEE)
        await mentoring.create_connection(
            session,
            admin,
            program_id=fabrikam.id,
            member_ids=[gita.id, person.id],
            kind=ConnectionKind.PAIR,
            name=None,
        )
    await session.commit()
    return logins
