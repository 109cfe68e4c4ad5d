"""Meeting pages: book from a free slot, My meetings, details, edit, cancel, answer, and the
public RSVP page behind the links in invitation emails."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from server.models import Meeting, MeetingAttendee, User
from server.models.base import utcnow
from server.models.enums import AttendeeResponse, MeetingStatus
from server.pages.common import is_htmx, redirect, render, services, viewer
from server.services.errors import DomainError, NotFound, ValidationFailed
from server.services.invites.calendar_links import calendar_links
from server.services.meetings import booking as meeting_booking
from server.services.people import mentoring
from server.services.people.sessions import Viewer
from server.services.validation import check_moment, wall_clock_to_utc
from server.web.templating import local_time

DEFAULT_MINUTES = 60
DURATIONS = (15, 20, 30, 45, 60, 90, 120, 180, 240)
ANSWER_LABELS = {
    "needs_action": "Not answered yet",
    "accepted": "Accepted",
    "tentative": "Tentative",
    "declined": "Declined",
}
SYNC_LABELS = {
    "synced": "In your calendar.",
    "pending": "Not in your calendar yet: Tandem will try again shortly.",
    "failed": "Tandem could not add this meeting to your calendar.",
}
# Only plain web links become clickable; anything else (javascript:, data:) stays text.
_WEB_LINK = re.compile(r"^https?://[^\s<>\"']+$", re.IGNORECASE)
_FIELD_FOR = {"durationMinutes": "duration", "start": "start"}


def _uuid(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise HTTPException(404) from None


def _local_parts(moment: datetime, zone: str) -> tuple[str, str]:
    try:
        local = moment.astimezone(ZoneInfo(zone))
    except (OverflowError, ValueError):  # a stored time at the edge of what datetime holds
        local = moment
    return local.strftime("%Y-%m-%d"), local.strftime("%H:%M")


def _parse_start(form: FormData, zone: str) -> datetime:
    """The form's date and time are on the viewer's wall clock; Tandem stores UTC."""
    try:
        day = date.fromisoformat(str(form.get("date", "")))
        clock = time.fromisoformat(str(form.get("time", "")))
    except ValueError:
        raise DomainError("Give a date and a time.", field="start") from None
    return wall_clock_to_utc(datetime.combine(day, clock), zone)


def _duration(raw: Any) -> int:
    try:
        return int(str(raw))
    except ValueError:
        raise DomainError("Pick a duration.", field="durationMinutes") from None


def _meeting_card(meeting: Meeting, attendees: list[MeetingAttendee], me: User) -> dict[str, Any]:
    mine = next((a for a in attendees if a.user_id == me.id), None)
    return {
        "meeting": meeting,
        "attendees": [
            {
                "row": a,
                "organizer": a.user_id == meeting.owner_id,
                "answer": ANSWER_LABELS[a.response.value],
                "response": a.response.value,
            }
            for a in attendees
        ],
        "is_owner": meeting.owner_id == me.id,
        "my_response": mine.response.value if mine else None,
        "my_answer": ANSWER_LABELS[mine.response.value] if mine else None,
        "cancelled": meeting.status == MeetingStatus.CANCELLED,
        "ended": meeting.end_at <= utcnow(),
        "location_link": bool(meeting.location and _WEB_LINK.match(meeting.location)),
        "sync_label": SYNC_LABELS.get(meeting.calendar_sync_state),
        "minutes": int((meeting.end_at - meeting.start_at).total_seconds() // 60),
        "add_links": calendar_links(
            meeting.title, meeting.start_at, meeting.end_at, meeting.description, meeting.location
        ),
    }


# --- booking ------------------------------------------------------------------------------


async def new_meeting(request: Request) -> Response:
    """The booking form for a free slot (``?start=<ISO UTC>&duration=<minutes>``)."""
    current = viewer(request)
    connection_id = _uuid(request.path_params["connection_id"])
    start = _slot_start(request.query_params.get("start"))
    try:
        minutes = int(request.query_params.get("duration", DEFAULT_MINUTES))
    except ValueError:
        minutes = DEFAULT_MINUTES
    day, clock = _local_parts(start, current.user.time_zone) if start else ("", "")
    form = {
        "title": "",
        "description": "",
        "location": "",
        "date": day,
        "time": clock,
        "duration": minutes,
    }
    return await _booking_form(request, current, connection_id, form)


def _slot_start(raw: str | None) -> datetime | None:
    """The ``start`` query parameter: absent, or a time with an offset within range (400
    otherwise: a link Tandem wrote never carries anything else)."""
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
        return check_moment(value, field="start", what="The start")
    except (ValueError, ValidationFailed):  # unparseable, no offset, or out of range
        raise HTTPException(400, "The start in this link is not a valid time.") from None


async def _booking_form(
    request: Request,
    current: Viewer,
    connection_id: uuid.UUID,
    form: dict[str, Any],
    *,
    error: DomainError | None = None,
    wanted: tuple[datetime, int] | None = None,
) -> Response:
    alternatives: list[datetime] = []
    async with services(request).db.session() as db:
        try:
            connection = await mentoring.get_visible_connection(db, current.user, connection_id)
        except NotFound:
            raise HTTPException(404) from None
        members = (await mentoring.members_by_connection(db, [connection.id]))[connection.id]
        if error is not None and error.code == "conflict" and wanted is not None:
            alternatives = await meeting_booking.nearest_free_starts(
                db,
                services(request).meetings,
                current,
                connection_id=connection.id,
                start=wanted[0],
                duration_minutes=wanted[1],
            )
    message = error.message if error else None
    if alternatives and isinstance(error, meeting_booking.SlotNotFree):  # times, not reasons
        message = "That time is not free for everyone. Pick one of the nearest free times."
    context = {
        "connection": connection,
        "others": [user for user, _role in members if user.id != current.user.id],
        "form": form,
        "durations": sorted({*DURATIONS, int(form["duration"])})
        if str(form["duration"]).isdigit()
        else DURATIONS,
        "action": f"/connections/{connection.id}/meetings",
        "submit_label": "Book meeting",
        "error": message,
        "error_field": _FIELD_FOR.get(error.field or "", error.field) if error else None,
        "alternatives": [
            {"value": a.strftime("%Y-%m-%dT%H:%M:%SZ"), "start": a} for a in alternatives
        ],
    }
    status = 422 if error else 200
    if error and error.code == "conflict":
        status = 409
    template = "partials/meeting_form.html" if is_htmx(request) else "pages/meeting_new.html"
    response = render(request, template, context, status_code=status)
    response.headers["Vary"] = "HX-Request, Cookie"
    return response


async def create_meeting(request: Request) -> Response:
    current = viewer(request)
    connection_id = _uuid(request.path_params["connection_id"])
    form = await request.form()
    values = _form_values(form)
    wanted: tuple[datetime, int] | None = None
    try:
        start = _picked(form) or _parse_start(form, current.user.time_zone)
        minutes = _duration(form.get("duration"))
        wanted = (start, minutes)
        async with services(request).db.session() as db:
            meeting = await meeting_booking.schedule_meeting(
                db,
                services(request).meetings,
                current,
                connection_id=connection_id,
                start=start,
                duration_minutes=minutes,
                title=values["title"],
                description=values["description"],
                location=values["location"],
            )
    except NotFound as exc:
        if exc.field in (None, "connectionId"):
            raise HTTPException(404) from None
        return await _booking_form(request, current, connection_id, values, error=exc)
    except DomainError as exc:
        if wanted is not None:  # show the time that was tried, on the viewer's clock
            values["date"], values["time"] = _local_parts(wanted[0], current.user.time_zone)
        return await _booking_form(
            request, current, connection_id, values, error=exc, wanted=wanted
        )
    return redirect(f"/meetings/{meeting.id}?notice=meeting_scheduled", request=request)


def _picked(form: FormData) -> datetime | None:
    """One of the offered nearest free times (``pick``, ISO 8601 UTC), if one was chosen."""
    raw = str(form.get("pick", "") or "")
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return check_moment(value, field="start", what="The start")
    except ValueError:
        raise DomainError("Give a date and a time.", field="start") from None


def _form_values(form: FormData) -> dict[str, Any]:
    return {
        "title": str(form.get("title", "")),
        "description": str(form.get("description", "")),
        "location": str(form.get("location", "")),
        "date": str(form.get("date", "")),
        "time": str(form.get("time", "")),
        "duration": str(form.get("duration", DEFAULT_MINUTES)),
    }


# --- reading ------------------------------------------------------------------------------


async def my_meetings(request: Request) -> Response:
    current = viewer(request)
    async with services(request).db.session() as db:
        upcoming = await meeting_booking.meetings_for(db, current.user, upcoming=True)
        past = await meeting_booking.meetings_for(db, current.user, upcoming=False, limit=50)
        attendees = await meeting_booking.attendees_by_meeting(
            db, [m.id for m in (*upcoming, *past)]
        )
    return render(
        request,
        "pages/meetings.html",
        {
            "upcoming": [_meeting_card(m, attendees[m.id], current.user) for m in upcoming],
            "past": [_meeting_card(m, attendees[m.id], current.user) for m in past],
        },
    )


async def meeting_detail(request: Request) -> Response:
    current = viewer(request)
    card = await _card(request, current, _uuid(request.path_params["meeting_id"]))
    return render(request, "pages/meeting.html", {"card": card})


async def _card(request: Request, current: Viewer, meeting_id: uuid.UUID) -> dict[str, Any]:
    async with services(request).db.session() as db:
        try:
            meeting = await meeting_booking.get_meeting(db, current.user, meeting_id)
        except NotFound:
            raise HTTPException(404) from None
        attendees = (await meeting_booking.attendees_by_meeting(db, [meeting.id]))[meeting.id]
    return _meeting_card(meeting, attendees, current.user)


async def meeting_ics(request: Request) -> Response:
    """The meeting as ``.ics``, for attendees whose calendar Tandem does not write."""
    current = viewer(request)
    meeting_id = _uuid(request.path_params["meeting_id"])
    async with services(request).db.session() as db:
        try:
            document = await meeting_booking.meeting_ics(db, current.user, meeting_id)
        except NotFound:
            raise HTTPException(404) from None
    return Response(
        document,
        media_type="text/calendar; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="meeting.ics"',
            "Cache-Control": "private, no-store",
        },
    )


# --- changing -----------------------------------------------------------------------------


async def edit_meeting(request: Request) -> Response:
    current = viewer(request)
    card = await _card(request, current, _uuid(request.path_params["meeting_id"]))
    meeting = card["meeting"]
    if not card["is_owner"] or card["cancelled"] or card["ended"]:
        raise HTTPException(404)
    day, clock = _local_parts(meeting.start_at, current.user.time_zone)
    form = {
        "title": meeting.title,
        "description": meeting.description,
        "location": meeting.location or "",
        "date": day,
        "time": clock,
        "duration": card["minutes"],
    }
    return _edit_form(request, card, form)


def _edit_form(
    request: Request,
    card: dict[str, Any],
    form: dict[str, Any],
    *,
    error: DomainError | None = None,
) -> Response:
    context = {
        "card": card,
        "form": form,
        "durations": sorted({*DURATIONS, int(form["duration"])})
        if str(form["duration"]).isdigit()
        else DURATIONS,
        "action": f"/meetings/{card['meeting'].id}/edit",
        "submit_label": "Save changes",
        "error": error.message if error else None,
        "error_field": _FIELD_FOR.get(error.field or "", error.field) if error else None,
    }
    status = (409 if error.code == "conflict" else 422) if error else 200
    template = "partials/meeting_form.html" if is_htmx(request) else "pages/meeting_edit.html"
    response = render(request, template, context, status_code=status)
    response.headers["Vary"] = "HX-Request, Cookie"
    return response


async def save_meeting(request: Request) -> Response:
    current = viewer(request)
    meeting_id = _uuid(request.path_params["meeting_id"])
    card = await _card(request, current, meeting_id)
    form = await request.form()
    values = _form_values(form)
    try:
        start = _parse_start(form, current.user.time_zone)
        minutes = _duration(form.get("duration"))
        async with services(request).db.session() as db:
            await meeting_booking.update_meeting(
                db,
                services(request).meetings,
                current,
                meeting_id,
                start=start,
                duration_minutes=minutes,
                title=values["title"],
                description=values["description"],
                location=values["location"],
            )
    except NotFound:
        raise HTTPException(404) from None
    except DomainError as exc:
        return _edit_form(request, card, values, error=exc)
    return redirect(f"/meetings/{meeting_id}?notice=meeting_updated", request=request)


def _cancel_confirm(
    request: Request, card: dict[str, Any], *, message: str = "", error: str | None = None
) -> Response:
    """The confirmation step: a dialog for htmx, a page of its own without JavaScript."""
    meeting = card["meeting"]
    others = [a["row"].name for a in card["attendees"] if not a["organizer"]]
    when = local_time(meeting.start_at, viewer(request).user.time_zone)
    confirm = {
        "title": meeting.title,
        "heading": "Cancel this meeting?",
        "what": f"{meeting.title} on {when} ({viewer(request).user.time_zone}) is cancelled "
        f"for everyone: {', '.join(others) or 'the attendees'} get a cancellation email.",
        "action": f"/meetings/{meeting.id}/cancel",
        "hidden": [],
        "button": "Yes, cancel the meeting",
        "button_class": "danger",
        "keep": "Keep the meeting",
        "back": f"/meetings/{meeting.id}",
        "message": message,
        "max_message": meeting_booking.MAX_NOTE,
        "error": error,
    }
    as_dialog = is_htmx(request) and error is None
    template = "partials/confirm.html" if as_dialog else "pages/confirm.html"
    response = render(
        request,
        template,
        {"confirm": confirm, "as_dialog": as_dialog},
        status_code=422 if error else 200,
    )
    response.headers["Vary"] = "HX-Request, Cookie"
    return response


async def confirm_cancel(request: Request) -> Response:
    current = viewer(request)
    card = await _card(request, current, _uuid(request.path_params["meeting_id"]))
    if not card["is_owner"] or card["cancelled"] or card["ended"]:
        raise HTTPException(404)
    return _cancel_confirm(request, card)


async def cancel_meeting(request: Request) -> Response:
    current = viewer(request)
    meeting_id = _uuid(request.path_params["meeting_id"])
    form = await request.form()
    message = str(form.get("message", "") or "")
    async with services(request).db.session() as db:
        try:
            await meeting_booking.cancel_meeting(
                db, services(request).meetings, current, meeting_id, message=message
            )
        except NotFound:
            raise HTTPException(404) from None
        except ValidationFailed as exc:
            card = await _card(request, current, meeting_id)
            return _cancel_confirm(request, card, message=message, error=exc.message)
        except DomainError as exc:
            card = await _card(request, current, meeting_id)
            return render(
                request, "pages/meeting.html", {"card": card, "error": exc.message}, status_code=403
            )
    return redirect(f"/meetings/{meeting_id}?notice=meeting_cancelled", request=request)


async def respond(request: Request) -> Response:
    """An attendee's answer from the app; htmx swaps just the answer panel."""
    current = viewer(request)
    meeting_id = _uuid(request.path_params["meeting_id"])
    form = await request.form()
    error: str | None = None
    try:
        response = AttendeeResponse(str(form.get("response", "")))
    except ValueError:
        response, error = None, "Answer accepted, tentative or declined."
    if response is not None:
        async with services(request).db.session() as db:
            try:
                await meeting_booking.answer_meeting(
                    db, services(request).meetings, current, meeting_id, response
                )
            except NotFound:
                raise HTTPException(404) from None
            except DomainError as exc:
                error = exc.message
    if error is None and not is_htmx(request):
        if form.get("back") == "home":  # a one-click answer from the home dashboard
            return redirect("/?notice=answer_saved")
        return redirect(f"/meetings/{meeting_id}?notice=answer_saved")
    card = await _card(request, current, meeting_id)
    status = 422 if error else 200
    if is_htmx(request):
        saved = None if error else ANSWER_LABELS[card["my_response"]]
        result = render(
            request,
            "partials/meeting_answer.html",
            {"card": card, "answer_error": error, "saved": saved},
            status_code=status,
        )
    else:
        result = render(
            request, "pages/meeting.html", {"card": card, "answer_error": error}, status_code=status
        )
    result.headers["Vary"] = "HX-Request, Cookie"
    return result


# --- public RSVP links --------------------------------------------------------------------


async def rsvp_page(request: Request) -> Response:
    """What the link will do, with a button: opening a link changes nothing."""
    token = request.path_params["token"]
    async with services(request).db.session() as db:
        try:
            preview = await meeting_booking.preview_rsvp_link(db, services(request).meetings, token)
        except meeting_booking.InvalidRsvpLink as exc:
            return _rsvp_refused(request, exc.message)
    return render(request, "pages/rsvp.html", {**_rsvp_context(preview), "done": False})


async def rsvp_confirm(request: Request) -> Response:
    token = request.path_params["token"]
    async with services(request).db.session() as db:
        try:
            preview = await meeting_booking.respond_with_link(db, services(request).meetings, token)
        except meeting_booking.InvalidRsvpLink as exc:
            return _rsvp_refused(request, exc.message)
    return render(request, "pages/rsvp.html", {**_rsvp_context(preview), "done": True})


def _rsvp_refused(request: Request, message: str) -> Response:
    return render(request, "pages/rsvp.html", {"refused": message}, status_code=400)


def _rsvp_context(preview: meeting_booking.RsvpPreview) -> dict[str, Any]:
    return {
        "meeting": preview.meeting,
        "attendee": preview.attendee,
        "response": preview.response.value,
        "answer": ANSWER_LABELS[preview.response.value],
        "attendee_zone": preview.time_zone,
        "minutes": int((preview.meeting.end_at - preview.meeting.start_at) / timedelta(minutes=1)),
    }
