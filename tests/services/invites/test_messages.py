"""iTIP documents and invitation emails: what calendar clients and mail readers will parse."""

from __future__ import annotations

import email
import email.policy
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar, Event

from server.services.invites import (
    Invitation,
    Person,
    build_cancel,
    build_request,
    invitation_message,
    notification_message,
)
from server.services.validation import strip_controls

ORGANIZER = Person("Olga Organizer", "olga@example.org")
ANN = Person("Ann Attendee", "ann@example.org", "America/New_York")
BO = Person("Bo Ström", "bo@example.net")
START = datetime(2025, 3, 10, 14, 0, tzinfo=UTC)
NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
LINKS = {
    "accepted": "https://tandem.example/rsvp/AAA",
    "tentative": "https://tandem.example/rsvp/TTT",
    "declined": "https://tandem.example/rsvp/DDD",
}


def make_invite(**changes: object) -> Invitation:
    fields: dict[str, object] = {
        "uid": "0f9c@tandem.example",
        "sequence": 0,
        "title": "Mentoring check-in",
        "description": "Agenda:\n1. goals\n2. next steps",
        "location": "Room 4",
        "start": START,
        "end": START + timedelta(minutes=45),
        "time_zone": "Europe/Berlin",
        "organizer": ORGANIZER,
        "attendees": [ORGANIZER, ANN, BO],
        "meeting_id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    }
    fields.update(changes)
    return Invitation(**fields)  # type: ignore[arg-type]


def parse(document: bytes) -> Calendar:
    return Calendar.from_ical(document)


def only_event(cal: Calendar) -> Event:
    events = cal.events
    assert len(events) == 1
    return events[0]


def attendees_by_email(event: Event) -> dict[str, Any]:
    values = event.get("ATTENDEE")
    values = values if isinstance(values, list) else [values]
    return {str(value).removeprefix("mailto:"): value for value in values}


# --- iCalendar -----------------------------------------------------------------------


def test_request_has_method_uid_sequence_and_confirmed_status() -> None:
    cal = parse(build_request(make_invite(sequence=3), now=NOW))
    event = only_event(cal)

    assert cal["METHOD"] == "REQUEST"
    assert "Tandem" in str(cal["PRODID"])
    assert str(event["UID"]) == "0f9c@tandem.example"
    assert event.sequence == 3
    assert event["STATUS"] == "CONFIRMED"
    assert event.decoded("DTSTAMP") == NOW


def test_times_carry_the_meeting_zone_with_a_matching_vtimezone() -> None:
    document = build_request(make_invite(), now=NOW)
    cal = parse(document)
    event = only_event(cal)

    assert b"DTSTART;TZID=Europe/Berlin:20250310T150000" in document
    assert event["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert event["DTEND"].params["TZID"] == "Europe/Berlin"
    assert event.start == START
    assert event.end == START + timedelta(minutes=45)
    zones = cal.timezones
    assert [str(zone["TZID"]) for zone in zones] == ["Europe/Berlin"]
    # The generated rules put 15:00 on 10 March at +01:00 (before the March DST switch).
    assert zones[0].to_tz().utcoffset(datetime(2025, 3, 10, 15)) == timedelta(hours=1)
    assert zones[0].to_tz().utcoffset(datetime(2025, 7, 1, 12)) == timedelta(hours=2)


def test_utc_meetings_use_utc_times_and_need_no_vtimezone() -> None:
    cal = parse(build_request(make_invite(time_zone="UTC"), now=NOW))

    assert b"DTSTART:20250310T140000Z" in cal.to_ical()
    assert cal.timezones == []


def test_organizer_and_attendees_are_addressed_for_rsvp() -> None:
    event = only_event(parse(build_request(make_invite(), now=NOW)))

    organizer = event["ORGANIZER"]
    assert str(organizer) == "mailto:olga@example.org"
    assert organizer.params["CN"] == "Olga Organizer"

    attendees = attendees_by_email(event)
    assert set(attendees) == {"olga@example.org", "ann@example.org", "bo@example.net"}
    for address in ("ann@example.org", "bo@example.net"):
        params = attendees[address].params
        assert params["ROLE"] == "REQ-PARTICIPANT"
        assert params["PARTSTAT"] == "NEEDS-ACTION"
        assert params["RSVP"] == "TRUE"
    assert attendees["bo@example.net"].params["CN"] == "Bo Ström"
    assert attendees["olga@example.org"].params["PARTSTAT"] == "ACCEPTED"


def test_organizer_listed_once_even_when_also_an_attendee_in_other_case() -> None:
    loud = Person("Olga", "OLGA@example.org")
    event = only_event(parse(build_request(make_invite(attendees=[loud, ANN]), now=NOW)))

    emails = [email.casefold() for email in attendees_by_email(event)]
    assert sorted(emails) == ["ann@example.org", "olga@example.org"]


def test_user_text_with_ical_special_characters_round_trips() -> None:
    title = 'Review; plan, "draft"\nnext: Zürich 東京 ✓'
    description = "Line one;\nline two, with \\ backslash"
    location = 'Café, Floor 2; Room "B"'
    document = build_request(
        make_invite(title=title, description=description, location=location), now=NOW
    )
    event = only_event(parse(document))

    assert b'SUMMARY:Review\\; plan\\, "draft"\\nnext: Z' in document
    assert str(event["SUMMARY"]) == title
    assert str(event["DESCRIPTION"]) == description
    assert str(event["LOCATION"]) == location


def test_control_and_bidi_characters_never_reach_the_attachment() -> None:
    """Rows stored before input was cleaned still leave the calendar clean."""
    raw = "Pay\x00day\x1b[2J \u202egnp.exe\u2066 \x85end"
    odd = Person("Ev\x00e \u202eknilb", "eve@example.org")
    document = build_request(
        make_invite(title=raw, description=f"{raw}\nline two", location=raw, attendees=[odd]),
        now=NOW,
    )
    event = only_event(parse(document))
    assert str(event["SUMMARY"]) == str(event["LOCATION"]) == "Payday[2J gnp.exe end"
    assert str(event["DESCRIPTION"]) == "Payday[2J gnp.exe end\nline two"
    assert attendees_by_email(event)["eve@example.org"].params["CN"] == "Eve knilb"
    text = document.decode()
    for char in ("\x00", "\x1b", "\x85", "\u202e", "\u2066"):
        assert char not in text


def test_names_with_quotes_and_separators_survive_as_parameters() -> None:
    odd = Person('Dana "DJ" Doe, PhD; Esq.', "dana@example.org")
    event = only_event(parse(build_request(make_invite(attendees=[odd]), now=NOW)))

    assert attendees_by_email(event)["dana@example.org"].params["CN"] == odd.name


@settings(max_examples=60, deadline=None)
@given(
    title=st.text(
        st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(',;:\\\n"'),
        min_size=1,
        max_size=60,
    )
)
def test_any_title_round_trips(title: str) -> None:
    """Whatever the title, minus bidi controls (never written to a calendar)."""
    event = only_event(parse(build_request(make_invite(title=title), now=NOW)))

    assert str(event["SUMMARY"]) == strip_controls(title, keep="\n\t")


def test_update_keeps_uid_and_raises_sequence() -> None:
    first = only_event(parse(build_request(make_invite(), now=NOW)))
    moved = make_invite(
        sequence=1, start=START + timedelta(days=1), end=START + timedelta(days=1, hours=1)
    )
    second = only_event(parse(build_request(moved, now=NOW + timedelta(hours=1))))

    assert str(second["UID"]) == str(first["UID"])
    assert second.sequence > first.sequence
    assert second.start == START + timedelta(days=1)


def test_cancel_has_cancel_method_and_cancelled_status() -> None:
    cal = parse(build_cancel(make_invite(sequence=2), now=NOW))
    event = only_event(cal)

    assert cal["METHOD"] == "CANCEL"
    assert event["STATUS"] == "CANCELLED"
    assert event.sequence == 2
    assert str(event["UID"]) == "0f9c@tandem.example"
    assert set(attendees_by_email(event)) >= {"ann@example.org", "bo@example.net"}


def test_optional_fields_are_left_out_when_empty() -> None:
    event = only_event(parse(build_request(make_invite(description="", location=None), now=NOW)))

    assert "DESCRIPTION" not in event
    assert "LOCATION" not in event


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"start": datetime(2025, 3, 10, 14)}, "aware"),
        ({"end": START}, "after"),
        ({"sequence": -1}, "negative"),
        ({"uid": "a\nb"}, "single line"),
    ],
)
def test_invitation_rejects_values_clients_would_misread(
    changes: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        make_invite(**changes)


def test_unknown_time_zone_is_rejected_early() -> None:
    with pytest.raises(Exception, match="Mars"):
        make_invite(time_zone="Mars/Olympus")


# --- Invitation emails ---------------------------------------------------------------


def reparse(message: EmailMessage) -> EmailMessage:
    """What a receiving client sees: the message serialised and parsed again."""
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def subject(message: EmailMessage) -> str:
    """Python folds a long Subject right after the colon; readers unfold it with a leading space."""
    return str(message["Subject"]).strip()


def payload(part: EmailMessage) -> bytes:
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    return data


def parts_by_type(message: EmailMessage) -> dict[str, EmailMessage]:
    return {part.get_content_type(): part for part in message.walk() if not part.is_multipart()}


def test_invitation_email_has_text_html_calendar_and_attachment() -> None:
    invite = make_invite()
    message = reparse(
        invitation_message(invite, ANN, LINKS, "request", "Tandem <tandem@example.org>", now=NOW)
    )
    parts = parts_by_type(message)

    assert message.get_content_type() == "multipart/mixed"
    assert message["To"].addresses[0].addr_spec == "ann@example.org"
    assert message["From"].addresses[0].addr_spec == "tandem@example.org"
    assert (
        subject(message)
        == "Invitation: Mentoring check-in (Mon 10 Mar 2025 10:00 America/New_York)"
    )
    alternative = next(part for part in message.iter_parts())
    assert [p.get_content_type() for p in alternative.iter_parts()] == [
        "text/plain",
        "text/html",
        "text/calendar",
    ]
    calendar = parts["text/calendar"]
    assert calendar.get_param("method") == "REQUEST"
    assert calendar.get_content_charset() == "utf-8"
    attachment = parts["application/ics"]
    assert attachment.get_filename() == "invite.ics"
    assert attachment.get_content_disposition() == "attachment"
    assert calendar.get_payload(decode=True) == attachment.get_payload(decode=True)
    assert parse(payload(attachment))["METHOD"] == "REQUEST"


def test_times_are_shown_in_the_attendees_zone_or_else_the_meetings() -> None:
    invite = make_invite()
    for_ann = invitation_message(invite, ANN, LINKS, "request", "t@example.org", now=NOW)
    for_bo = invitation_message(invite, BO, LINKS, "request", "t@example.org", now=NOW)

    ann_text = for_ann.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    bo_text = for_bo.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Mon 10 Mar 2025, 10:00\u201310:45 (America/New_York, UTC-04:00)" in ann_text
    assert "Mon 10 Mar 2025, 15:00\u201315:45 (Europe/Berlin, UTC+01:00)" in bo_text


def test_text_and_html_carry_details_and_one_link_per_answer() -> None:
    message = reparse(
        invitation_message(make_invite(), ANN, LINKS, "request", "t@example.org", now=NOW)
    )
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]

    for body in (text, html):
        assert "Mentoring check-in" in body
        assert "Room 4" in body
        assert "Olga Organizer" in body
        assert "2. next steps" in body
        for url in LINKS.values():
            assert url in body
    assert f'href="{LINKS["declined"]}"' in html


def test_html_part_escapes_user_text() -> None:
    invite = make_invite(
        title="<script>alert(1)</script>",
        description='<img src=x onerror="alert(2)"> & more',
        location="<b>here</b>",
    )
    message = reparse(invitation_message(invite, ANN, LINKS, "request", "t@example.org", now=NOW))
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img" not in html
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt; &amp; more" in html
    assert "&lt;b&gt;here&lt;/b&gt;" in html
    # The text part is not HTML: it shows exactly what the organizer typed.
    assert "<script>alert(1)</script>" in text
    assert "& more" in text


def test_update_and_cancel_subjects_and_methods() -> None:
    update = invitation_message(
        make_invite(sequence=1), ANN, LINKS, "update", "t@example.org", now=NOW
    )
    cancel = invitation_message(
        make_invite(sequence=2), ANN, LINKS, "cancel", "t@example.org", now=NOW
    )

    assert update["Subject"].startswith("Updated invitation: Mentoring check-in (")
    assert parts_by_type(update)["text/calendar"].get_param("method") == "REQUEST"
    assert cancel["Subject"].startswith("Cancelled: Mentoring check-in (")
    cancel_parts = parts_by_type(cancel)
    assert cancel_parts["text/calendar"].get_param("method") == "CANCEL"
    assert parse(payload(cancel_parts["application/ics"]))["METHOD"] == "CANCEL"
    # A cancelled meeting offers nothing to answer.
    cancel_text = cancel.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "cancelled" in cancel_text
    assert LINKS["accepted"] not in cancel_text


def test_multiline_title_cannot_inject_headers() -> None:
    invite = make_invite(title="Hi\r\nBcc: victim@example.com")
    message = reparse(invitation_message(invite, ANN, LINKS, "request", "t@example.org", now=NOW))

    assert message["Bcc"] is None
    assert subject(message).startswith("Invitation: Hi Bcc: victim@example.com (")


def test_notification_message_with_and_without_html() -> None:
    plain = reparse(
        notification_message(
            "ann@example.org", "Poll\nopen", "Vote now", None, "t@example.org", now=NOW
        )
    )
    rich = reparse(
        notification_message(
            ANN, "Poll open", "Vote now", "<p>Vote now</p>", "t@example.org", now=NOW
        )
    )

    assert plain.get_content_type() == "text/plain"
    assert plain["Subject"] == "Poll open"
    assert plain.get_content().strip() == "Vote now"
    assert rich.get_content_type() == "multipart/alternative"
    assert rich["To"] == "Ann Attendee <ann@example.org>"
    assert rich.get_body(("html",)).get_content().strip() == "<p>Vote now</p>"  # type: ignore[union-attr]
