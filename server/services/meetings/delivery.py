"""Getting a meeting out of Tandem: the event in the owner's calendar and the emails.

Who sends the invitations is decided per provider, so attendees never get two:

- Google: Tandem emails (iCalendar with signed RSVP links) and writes the owner's event
  with ``sendUpdates=none`` and ``iCalUID`` = the meeting's UID, so the copy Google puts
  in a Gmail guest's calendar and Tandem's email are one event. A Google calendar connected without ``calendar.events``
  (the user unticked it on the consent screen) is read-only: nothing is written there.
- Microsoft: Graph always emails the attendees of an event it creates, so Tandem sends
  nothing itself. If Graph could not be reached when the meeting was booked (nothing
  was created), Tandem emails instead and, from then on, writes the owner's event
  *without* attendees, so Graph has nobody to email. If the create may have happened
  (a timeout, or a 5xx after which the event could not be looked up: ``OutcomeUnknown``),
  Graph may already have emailed the attendees, so Tandem sends nothing and retries; the
  retry finds the first event by its ``transactionId`` rather than making a second.
- CalDAV (iCloud and others): servers do not schedule for Tandem, so Tandem emails.
- An owner covered by the organization's integration: the meeting is created in the
  organization's service (acting) account with every attendee, the owner included, and
  the provider invites them all, so Tandem sends nothing itself.
- No calendar, or calendar sync off for the program: Tandem emails.

The meeting row is always committed before a provider is called; a provider that fails
leaves ``calendar_sync_state = "pending"`` and the job loop retries with backoff
(:func:`retry_pending_calendar_writes`). Provider calls never run inside a database lock.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import (
    CalendarConnection,
    Meeting,
    MeetingAttendee,
    OrganizationIntegration,
    User,
)
from server.models.base import utcnow
from server.models.enums import CalendarStatus, MeetingStatus, ProviderName
from server.providers.base import (
    AccessDenied,
    AuthExpired,
    CalendarProvider,
    Credentials,
    EventAttendee,
    ExternalEvent,
    InvalidCredentials,
    OutcomeUnknown,
    ProviderError,
    ProviderMisconfigured,
    ProviderUnavailable,
    RateLimited,
)
from server.providers.secrets import SecretError
from server.services.calendars import refresh_lock
from server.services.calendars.deps import (
    CalendarDeps,
    load_credentials,
    save_refreshed_credentials,
)
from server.services.integrations.directory import open_directory
from server.services.invites import (
    Invitation,
    InviteKind,
    Mailer,
    MailError,
    Person,
    invitation_message,
    notification_message,
    rsvp_links,
)
from server.services.people import programs

log = logging.getLogger("tandem.meetings")

INVITES_BY_TANDEM = "tandem"
INVITES_BY_PROVIDER = "provider"

STATE_NONE = "none"
STATE_PENDING = "pending"
STATE_SYNCED = "synced"
STATE_FAILED = "failed"

MAX_ATTEMPTS = 8
RETRY_BASE_SECONDS = 60.0
RETRY_CAP_SECONDS = 6 * 3600.0
CLAIM_LEASE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class MeetingDeps:
    """What the meetings service needs from the process (built once in ``server.wiring``).

    ``rsvp_key`` is ``derive_key(newest key, "rsvp")`` and signs new links;
    ``older_rsvp_keys`` (from the older configured keys) still open links emailed before a
    key rotation. ``base_url`` makes absolute RSVP links. ``organizer_copy``: the owner
    gets a copy of what Tandem emails the attendees.
    """

    calendar: CalendarDeps
    mailer: Mailer
    rsvp_key: bytes
    base_url: str
    mail_from: str
    older_rsvp_keys: tuple[bytes, ...] = ()
    organizer_copy: bool = False  # the ORGANIZER_COPY setting (on by default in wiring)


def provider_sends_invitations(provider: ProviderName) -> bool:
    """Whether writing a meeting with attendees into this provider emails them anyway."""
    return provider == ProviderName.MICROSOFT


async def plan_calendar_write(
    db: AsyncSession, meeting: Meeting, program_id: uuid.UUID | None
) -> None:
    """Mark a new meeting for the owner's calendar when the program syncs and the owner has
    a connected calendar; pick who sends invitations. Call before the first commit."""
    meeting.calendar_sync_state = STATE_NONE
    meeting.invitations_by = INVITES_BY_TANDEM
    if not (await programs.settings_for(db, program_id)).two_way_sync_enabled:
        return
    connection = await _connection(db, meeting.owner_id)
    if connection is None or connection.status != CalendarStatus.CONNECTED:
        return
    if not connection.can_write_events:
        return  # connected read-only (Google granular consent): Tandem emails, writes nothing
    meeting.calendar_provider = connection.provider.value
    meeting.calendar_sync_state = STATE_PENDING
    if connection.integration_id is not None or provider_sends_invitations(connection.provider):
        meeting.invitations_by = INVITES_BY_PROVIDER


def mark_for_calendar(meeting: Meeting) -> None:
    """A change the owner's calendar must follow (update, cancel, a response to mirror)."""
    if meeting.calendar_provider is not None and meeting.calendar_sync_state != STATE_NONE:
        meeting.calendar_sync_state = STATE_PENDING
        meeting.calendar_attempts = 0
        meeting.calendar_retry_at = None


async def deliver(
    db: AsyncSession,
    deps: MeetingDeps,
    meeting: Meeting,
    kind: InviteKind,
    *,
    write_calendar: bool = True,
    note: str | None = None,
) -> None:
    """After a committed change: write the owner's calendar, then email if Tandem invites.

    ``write_calendar=False`` when the change came from the owner's calendar itself
    (two-way sync): writing it back would only echo it. ``note`` is the organizer's
    message for the attendees. Commits the calendar outcome. Never raises for provider
    or mail failures.
    """
    first_try_by_provider = meeting.invitations_by == INVITES_BY_PROVIDER
    if write_calendar and meeting.calendar_sync_state == STATE_PENDING:
        may_exist = await write_owner_calendar(db, deps.calendar, meeting)
        if (
            first_try_by_provider
            and meeting.provider_event_id is None
            and kind == "request"
            and not may_exist
        ):
            # Graph never got the meeting, so it invited nobody: Tandem does, for good.
            meeting.invitations_by = INVITES_BY_TANDEM
        db.add(meeting)
        await db.commit()
    if meeting.invitations_by == INVITES_BY_TANDEM:
        # A change made in the owner's own calendar needs no copy for the owner.
        await send_invitations(
            db,
            deps,
            meeting,
            kind,
            note=note,
            organizer_copy=deps.organizer_copy and write_calendar,
        )


async def send_invitations(
    db: AsyncSession,
    deps: MeetingDeps,
    meeting: Meeting,
    kind: InviteKind,
    *,
    note: str | None = None,
    organizer_copy: bool = False,
) -> int:
    """Email every attendee but the owner, then the owner a copy (no answer links);
    returns how many attendee messages went out.

    A refused message is logged (address withheld) and skipped: the meeting stands and the
    other attendees still hear of it.
    """
    owner = await db.get(User, meeting.owner_id)
    assert owner is not None
    attendees = await _attendees(db, meeting.id)
    zones = await _zones(db, [a.user_id for a in attendees if a.user_id is not None])
    invite = invitation_for(meeting, owner, attendees, zones)
    sent = 0
    for attendee in attendees:
        if attendee.user_id == owner.id or attendee.email.casefold() == owner.email.casefold():
            continue
        person = Person(
            name=attendee.name,
            email=attendee.email,
            time_zone=zones.get(attendee.user_id) if attendee.user_id else None,
        )
        links = (
            {}
            if kind == "cancel"
            else rsvp_links(
                deps.rsvp_key,
                deps.base_url,
                meeting.id,
                attendee.email,
                meeting.end_at,
                meeting.sequence,
            )
        )
        message = invitation_message(invite, person, links, kind, deps.mail_from, note=note)
        try:
            await deps.mailer.send(message)
        except MailError as exc:
            log.warning("invitation for meeting %s not delivered: %s", meeting.id, exc)
            continue
        sent += 1
    if organizer_copy and sent:
        own = Person(name=owner.name, email=owner.email, time_zone=owner.time_zone)
        copy = invitation_message(
            invite, own, {}, kind, deps.mail_from, note=note, organizer_copy=True
        )
        try:
            await deps.mailer.send(copy)
        except MailError as exc:
            log.warning("organizer's copy for meeting %s not delivered: %s", meeting.id, exc)
    return sent


async def send_decline_notice(
    db: AsyncSession, deps: MeetingDeps, meeting: Meeting, attendee: MeetingAttendee
) -> bool:
    """Tell the owner that ``attendee`` declined, in the owner's zone. Never raises for
    mail failures; returns whether the message went out."""
    owner = await db.get(User, meeting.owner_id)
    if owner is None or attendee.user_id == owner.id:
        return False
    zone = owner.time_zone
    try:
        local = meeting.start_at.astimezone(ZoneInfo(zone))
        to = Person(name=owner.name, email=owner.email, time_zone=zone)
    except (ValueError, OverflowError):
        return False
    when = f"{local:%a %d %b %Y, %H:%M} ({zone})"
    url = f"{deps.base_url.rstrip('/')}/meetings/{meeting.id}"
    title = meeting.title.replace("\r", " ").replace("\n", " ")
    lines = [
        f"{attendee.name} declined \u201c{title}\u201d on {when}.",
        "You may keep the meeting, change its time or cancel it.",
    ]
    text = "\n\n".join([*lines, f"Open the meeting: {url}"]) + "\n"
    body = "".join(f"<p>{escape(line)}</p>" for line in lines)
    html = (
        f"<!doctype html><html><body>{body}"
        f'<p><a href="{escape(url)}">Open the meeting</a></p></body></html>'
    )
    message = notification_message(
        to, f"{attendee.name} declined: {title}", text, html, deps.mail_from
    )
    try:
        await deps.mailer.send(message)
    except MailError as exc:
        log.warning("decline notice for meeting %s not delivered: %s", meeting.id, exc)
        return False
    return True


def invitation_for(
    meeting: Meeting,
    owner: User,
    attendees: Sequence[MeetingAttendee],
    zones: dict[uuid.UUID, str],
) -> Invitation:
    return Invitation(
        uid=meeting.ical_uid,
        sequence=meeting.sequence,
        title=meeting.title,
        description=meeting.description,
        location=meeting.location,
        start=meeting.start_at,
        end=meeting.end_at,
        time_zone=meeting.time_zone,
        organizer=Person(name=owner.name, email=owner.email, time_zone=owner.time_zone),
        attendees=[
            Person(
                name=a.name,
                email=a.email,
                time_zone=zones.get(a.user_id) if a.user_id else None,
                optional=a.optional,
            )
            for a in attendees
        ],
        meeting_id=meeting.id,
    )


async def write_owner_calendar(db: AsyncSession, deps: CalendarDeps, meeting: Meeting) -> bool:
    """Bring the owner's calendar in line with the meeting (create, update or delete) and
    record the outcome on the row. Does not commit.

    Returns True when the write failed in a way that may have taken effect anyway (the
    provider's ``OutcomeUnknown``, or a budget timeout mid-call): the caller must then
    act as if the provider had the meeting (and had invited its attendees)."""
    now = utcnow()
    connection = await _connection(db, meeting.owner_id)
    if (
        connection is None
        or meeting.calendar_provider is None
        or connection.provider.value != meeting.calendar_provider
        or connection.status == CalendarStatus.DISCONNECTED
    ):
        _failed(meeting, "The organizer's calendar is no longer connected.")
        return False
    if not connection.can_write_events:
        # Reconnected read-only since the meeting was booked: nothing to write, and no
        # point retrying as "reconnect" (the user chose not to allow meeting writes).
        _failed(meeting, "The organizer's calendar is connected without adding meetings.")
        return False
    if meeting.status == MeetingStatus.CANCELLED and meeting.provider_event_id is None:
        _synced(meeting)
        return False
    if connection.integration_id is not None:
        return await _write_through_directory(
            db, deps, meeting, connection, await _event(db, meeting, connection)
        )
    try:
        credentials = load_credentials(deps.secrets, connection)
    except SecretError:
        _failed(meeting, "Tandem could not open the organizer's calendar credentials.")
        return False
    provider = deps.registry.get(connection.provider)
    may_exist = False
    try:
        event = await _event(db, meeting, connection)
        # Several nodes: the newest token, refreshed under the connection's lock first.
        await refresh_lock.prepare(db, deps, connection.id, credentials)
        await _apply(provider, credentials, meeting, event)
    except (AuthExpired, InvalidCredentials):
        _retry_later(meeting, now, "The organizer must reconnect their calendar.")
    except (OutcomeUnknown, TimeoutError):
        may_exist = True
        _retry_later(
            meeting,
            now,
            "The organizer's calendar did not confirm the meeting; Tandem will check again.",
        )
    except AccessDenied:
        _retry_later(
            meeting,
            now,
            "The organizer's calendar refused access (an organization policy or a passing "
            "refusal); Tandem will retry.",
        )
    except ProviderMisconfigured:
        _retry_later(
            meeting,
            now,
            "Tandem's connection to the calendar provider is misconfigured; an administrator "
            "has been told and Tandem will retry.",
        )
    except (RateLimited, ProviderUnavailable):
        _retry_later(meeting, now, "The organizer's calendar did not answer; Tandem will retry.")
    except Exception as exc:  # a provider bug must not lose the meeting or its emails
        log.warning("calendar write for meeting %s failed: %s", meeting.id, type(exc).__name__)
        _retry_later(
            meeting, now, "The organizer's calendar refused the meeting; Tandem will retry."
        )
    else:
        _synced(meeting)
    finally:
        save_refreshed_credentials(deps.secrets, connection, credentials)
        db.add(connection)
    db.add(meeting)
    return may_exist


async def _write_through_directory(
    db: AsyncSession,
    deps: CalendarDeps,
    meeting: Meeting,
    connection: CalendarConnection,
    event: ExternalEvent,
) -> bool:
    """A covered owner's meeting, in the organization's service (acting) account. Same
    outcomes as a personal calendar's write; returns True when it may exist anyway."""
    now = utcnow()
    integration = await db.get(OrganizationIntegration, connection.integration_id)
    if integration is None or not integration.enabled:
        _failed(meeting, "The organization's calendar integration is off.")
        return False
    may_exist = False
    try:
        directory = open_directory(deps, integration)
    except (ProviderError, SecretError):
        _retry_later(
            meeting, now, "The organization's integration could not be opened; Tandem will retry."
        )
        db.add(meeting)
        return False
    try:
        if meeting.status == MeetingStatus.CANCELLED:
            assert meeting.provider_event_id is not None
            await directory.delete_event(meeting.provider_event_id)
        elif meeting.provider_event_id is None:
            meeting.provider_event_id = await directory.create_event(event)
        else:
            await directory.update_event(meeting.provider_event_id, event)
        _synced(meeting)
    except (OutcomeUnknown, TimeoutError):
        may_exist = True
        _retry_later(
            meeting,
            now,
            "The organization's calendar did not confirm the meeting; Tandem will check again.",
        )
    except (AuthExpired, InvalidCredentials, AccessDenied, ProviderMisconfigured):
        _retry_later(
            meeting,
            now,
            "The organization's calendar integration refused the meeting; an administrator "
            "must integrate again. Tandem will retry.",
        )
    except (RateLimited, ProviderUnavailable):
        _retry_later(meeting, now, "The organization's calendar did not answer; Tandem will retry.")
    except Exception as exc:  # a provider bug must not lose the meeting or its emails
        log.warning("directory write for meeting %s failed: %s", meeting.id, type(exc).__name__)
        _retry_later(
            meeting, now, "The organization's calendar refused the meeting; Tandem will retry."
        )
    finally:
        await directory.aclose()
    db.add(meeting)
    return may_exist


async def retry_pending_calendar_writes(
    db: AsyncSession, deps: MeetingDeps, *, limit: int = 50
) -> int:
    """Retry owner-calendar writes that are due; returns how many were attempted.

    Each meeting is claimed with a conditional UPDATE (a short lease on
    ``calendar_retry_at``), so several workers never write the same meeting at once.
    Provider writes are idempotent (Google looks the UID up as iCalUID before inserting,
    Graph's ``transactionId`` comes from the UID and Graph refuses a used one, after which
    the provider looks the first event up; CalDAV PUTs to the UID's URL), so a retry after
    a lost answer does not duplicate.
    """
    now = utcnow()
    due = (
        await db.exec(
            select(Meeting.id)
            .where(
                Meeting.calendar_sync_state == STATE_PENDING,
                or_(
                    col(Meeting.calendar_retry_at).is_(None),
                    col(Meeting.calendar_retry_at) <= now,
                ),
            )
            .order_by(col(Meeting.updated_at))
            .limit(limit)
        )
    ).all()
    attempted = 0
    for meeting_id in due:
        claim = await db.exec(
            update(Meeting)
            .where(
                col(Meeting.id) == meeting_id,
                col(Meeting.calendar_sync_state) == STATE_PENDING,
                or_(
                    col(Meeting.calendar_retry_at).is_(None),
                    col(Meeting.calendar_retry_at) <= now,
                ),
            )
            .values(calendar_retry_at=now + CLAIM_LEASE)
        )
        await db.commit()
        if claim.rowcount != 1:
            continue
        meeting = await db.get(Meeting, meeting_id, populate_existing=True)
        if meeting is None:
            continue
        was_created = meeting.provider_event_id is not None
        await write_owner_calendar(db, deps.calendar, meeting)
        await db.commit()
        attempted += 1
        log.info(
            "calendar write for meeting %s: %s (%s)",
            meeting.id,
            meeting.calendar_sync_state,
            "update" if was_created else "create",
        )
    return attempted


async def _apply(
    provider: CalendarProvider, credentials: Credentials, meeting: Meeting, event: ExternalEvent
) -> None:
    send = meeting.invitations_by == INVITES_BY_PROVIDER
    if meeting.status == MeetingStatus.CANCELLED:
        assert meeting.provider_event_id is not None
        await provider.delete_event(credentials, meeting.provider_event_id, send_invitations=send)
    elif meeting.provider_event_id is None:
        meeting.provider_event_id = await provider.create_event(
            credentials, event, send_invitations=send
        )
    else:
        await provider.update_event(
            credentials, meeting.provider_event_id, event, send_invitations=send
        )


async def _event(
    db: AsyncSession, meeting: Meeting, connection: CalendarConnection
) -> ExternalEvent:
    """The owner's copy. Attendees are left out only where listing them would make the
    provider email people Tandem already invited (Microsoft, after a fallback)."""
    managed = connection.integration_id is not None
    listed = managed or not (
        connection.provider == ProviderName.MICROSOFT
        and meeting.invitations_by == INVITES_BY_TANDEM
    )
    attendees = await _attendees(db, meeting.id) if listed else []
    return ExternalEvent(
        uid=meeting.ical_uid,
        title=meeting.title,
        description=meeting.description,
        location=meeting.location,
        start=meeting.start_at,
        end=meeting.end_at,
        time_zone=meeting.time_zone,
        organizer_email=connection.account_email,
        attendees=[
            EventAttendee(
                email=a.email, name=a.name, response=a.response.value, optional=a.optional
            )
            for a in attendees
            # In the organization's service account the owner is invited like the others.
            if managed or a.user_id != meeting.owner_id
        ],
        sequence=meeting.sequence,
    )


def _synced(meeting: Meeting) -> None:
    meeting.calendar_sync_state = STATE_SYNCED
    meeting.calendar_attempts = 0
    meeting.calendar_retry_at = None
    meeting.calendar_error = None


def _failed(meeting: Meeting, reason: str) -> None:
    meeting.calendar_sync_state = STATE_FAILED
    meeting.calendar_retry_at = None
    meeting.calendar_error = reason


def _retry_later(meeting: Meeting, now: datetime, reason: str) -> None:
    meeting.calendar_attempts += 1
    if meeting.calendar_attempts >= MAX_ATTEMPTS:
        _failed(meeting, reason.replace("; Tandem will retry", ""))
        return
    ceiling = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** (meeting.calendar_attempts - 1))
    meeting.calendar_sync_state = STATE_PENDING
    meeting.calendar_retry_at = now + timedelta(seconds=random.uniform(ceiling / 2, ceiling))
    meeting.calendar_error = reason


async def _connection(db: AsyncSession, user_id: uuid.UUID) -> CalendarConnection | None:
    return (
        await db.exec(select(CalendarConnection).where(CalendarConnection.user_id == user_id))
    ).first()


async def _attendees(db: AsyncSession, meeting_id: uuid.UUID) -> list[MeetingAttendee]:
    return list(
        (
            await db.exec(
                select(MeetingAttendee)
                .where(MeetingAttendee.meeting_id == meeting_id)
                .order_by(col(MeetingAttendee.name))
            )
        ).all()
    )


async def _zones(db: AsyncSession, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not user_ids:
        return {}
    rows = await db.exec(select(User.id, User.time_zone).where(col(User.id).in_(list(user_ids))))
    return dict(rows.all())
