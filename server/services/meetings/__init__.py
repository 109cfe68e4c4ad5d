"""Meetings: booking with a race-safe re-check, invitations and RSVPs (``booking``), writing
them to the owner's calendar (``delivery``), reading the owner's edits and attendees' answers
back (``calendar_sync``) and the admins' activity view (``activity``).
Imports availability, calendars, people and the layers underneath.
"""

__all__ = ["activity", "booking", "calendar_sync", "delivery"]
