"""Validators shared by services: time zones, emails, and wall-clock times across DST."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from server.services.errors import ValidationFailed
from server.services.validation import (
    clean_name,
    clean_text,
    normalize_email,
    validate_time_zone,
    wall_clock_to_utc,
)


def test_skipped_hour_is_refused_not_shifted() -> None:
    with pytest.raises(ValidationFailed, match="does not exist"):
        wall_clock_to_utc(datetime(2026, 3, 8, 2, 30), "America/New_York")
    assert wall_clock_to_utc(datetime(2026, 3, 8, 3, 30), "America/New_York") == datetime(
        2026, 3, 8, 7, 30, tzinfo=UTC
    )


def test_repeated_hour_means_its_first_occurrence() -> None:
    # 01:30 happens twice on 2026-11-01 in New York: first at UTC-4.
    assert wall_clock_to_utc(datetime(2026, 11, 1, 1, 30), "America/New_York") == datetime(
        2026, 11, 1, 5, 30, tzinfo=UTC
    )


def test_lord_howe_half_hour_shift() -> None:
    with pytest.raises(ValidationFailed):
        wall_clock_to_utc(datetime(2026, 10, 4, 2, 15), "Australia/Lord_Howe")


def test_zones_and_emails() -> None:
    assert validate_time_zone(" Europe/Paris ") == "Europe/Paris"
    with pytest.raises(ValidationFailed, match="Unknown time zone"):
        validate_time_zone("Europe/Atlantis")
    assert normalize_email(" Ana@Example.ORG ") == "ana@example.org"
    for bad in ("no-at-sign", "a@b", "a b@example.org", "<x>@example.org"):
        with pytest.raises(ValidationFailed):
            normalize_email(bad)


def test_names_drop_controls_and_bidi_but_keep_ordinary_unicode() -> None:
    assert clean_name("  Zoë\x00 李\t🎉\n👩\u200d💻 ") == "Zoë 李 🎉 👩\u200d💻"
    assert clean_name("invoice\u202egpj.exe\u2066\u2069\u200e\u200f") == "invoicegpj.exe"
    assert clean_name("a\x1b[2Jb\x7f\x85c\x9f") == "a[2Jbc"
    assert clean_name("lone\ud800surrogate") == "lonesurrogate"
    with pytest.raises(ValidationFailed, match="cannot be empty"):
        clean_name("\x00\u202e\x1b")


def test_multi_line_text_keeps_line_breaks_and_tabs() -> None:
    assert clean_text(" one\r\ntwo\x00\rthree\t\u202efour\n ", field="body") == (
        "one\ntwo\nthree\tfour"
    )
    with pytest.raises(ValidationFailed, match="longer than 5") as refused:
        clean_text("abcdef", field="body", what="Body", max_length=5)
    assert refused.value.field == "body"


def test_emails_with_control_characters_are_refused() -> None:
    for bad in ("ana\x00@example.org", "ana@exa\u202emple.org", "ana\x1b@example.org"):
        with pytest.raises(ValidationFailed, match="not a valid email"):
            normalize_email(bad)
