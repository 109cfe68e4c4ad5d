"""Builds the poll services' dependencies from the process's shared services."""

from __future__ import annotations

from server.services.polls.mail import PollDeps
from server.web.state import AppServices


def poll_deps(services: AppServices) -> PollDeps:
    return PollDeps(
        mailer=services.mailer,
        mail_from=services.settings.mail_from,
        base_url=services.settings.base_url,
    )
