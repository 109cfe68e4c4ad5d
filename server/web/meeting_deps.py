"""Builds the meetings service's dependencies from the process's shared services."""

from __future__ import annotations

from server.services.invites import derive_key
from server.services.meetings.delivery import MeetingDeps
from server.web.state import AppServices


def meeting_deps(services: AppServices) -> MeetingDeps:
    """The RSVP key is derived from the instance secret, one purpose per key, so a leak of
    this key forges RSVP links and nothing else."""
    return MeetingDeps(
        calendar=services.calendar,
        mailer=services.mailer,
        rsvp_key=derive_key(services.secrets.master_key(), "rsvp"),
        base_url=services.settings.base_url,
        mail_from=services.settings.mail_from,
        older_rsvp_keys=tuple(derive_key(key, "rsvp") for key in services.secrets.older_keys()),
    )
