"""The composition root: everything one Tandem process shares, built once.

``tandem serve``, ``tandem worker``, ``tandem demo`` and the tests all call
``build_services``; pages, resolvers and jobs take the service dependencies they need from
the ``AppServices`` it returns and never assemble them themselves.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import httpx
from jinja2 import Environment

from server.config import Settings
from server.db import Database
from server.jobs.queue import EmbeddedQueue, TaskQueue
from server.providers.org_registry import ExchangeOnlineConsent, directory_factory
from server.providers.registry import ProviderRegistry
from server.providers.secrets import SecretBox
from server.services.calendars.deps import CalendarDeps
from server.services.invites import Mailer, derive_key, mailer_from_settings
from server.services.invites.queue import QueueingMailer
from server.services.meetings.delivery import MeetingDeps
from server.services.polls.mail import PollDeps
from server.web.templating import build_environment


@dataclass
class AppServices:
    settings: Settings
    db: Database
    secrets: SecretBox
    http: httpx.AsyncClient
    templates: Environment
    registry: ProviderRegistry
    calendar: CalendarDeps
    mailer: Mailer
    meetings: MeetingDeps
    polls: PollDeps
    tasks: TaskQueue


def build_services(settings: Settings) -> AppServices:
    """Everything a process shares. The caller closes it with ``close_services``."""
    secrets = SecretBox.from_config(
        settings.secret_keys.get_secret_value() if settings.secret_keys else None,
        settings.data_dir,
    )
    verify: ssl.SSLContext | bool = True
    if settings.microsoft_ca_bundle is not None:  # the local Microsoft emulator's test CA
        verify = ssl.create_default_context()
        verify.load_verify_locations(cafile=str(settings.microsoft_ca_bundle))
    http = httpx.AsyncClient(
        timeout=settings.provider_timeout_seconds, follow_redirects=False, verify=verify
    )
    registry = ProviderRegistry.build(settings, http)
    database = Database.from_url(
        settings.resolved_database_url, pool_size=settings.database_pool_size
    )
    calendar = CalendarDeps(
        registry=registry,
        secrets=secrets,
        base_url=settings.base_url,
        horizon_days=settings.sync_horizon_days,
        max_age_seconds=settings.sync_max_age_seconds,
        push_enabled=settings.push_enabled,
        directories=directory_factory(settings, http),
        admin_consent=ExchangeOnlineConsent(settings),
    )
    mailer = QueueingMailer(mailer_from_settings(settings), database, secrets)
    return AppServices(
        settings=settings,
        db=database,
        secrets=secrets,
        http=http,
        templates=build_environment(),
        registry=registry,
        calendar=calendar,
        mailer=mailer,
        meetings=_meeting_deps(settings, secrets, calendar, mailer),
        polls=PollDeps(
            mailer=mailer,
            mail_from=settings.mail_from,
            base_url=settings.base_url,
            calendar=calendar,
        ),
        tasks=_task_queue(settings),
    )


def _task_queue(settings: Settings) -> TaskQueue:
    """procrastinate when several processes share PostgreSQL; else the in-process queue."""
    if settings.uses_procrastinate:
        from server.jobs.pg_queue import ProcrastinateQueue

        return ProcrastinateQueue(settings.resolved_database_url)
    return EmbeddedQueue(concurrency=settings.worker_concurrency)


def _meeting_deps(
    settings: Settings, secrets: SecretBox, calendar: CalendarDeps, mailer: Mailer
) -> MeetingDeps:
    """The RSVP key is derived from the instance secret, one purpose per key, so a leak of
    this key forges RSVP links and nothing else."""
    return MeetingDeps(
        calendar=calendar,
        mailer=mailer,
        rsvp_key=derive_key(secrets.master_key(), "rsvp"),
        base_url=settings.base_url,
        mail_from=settings.mail_from,
        older_rsvp_keys=tuple(derive_key(key, "rsvp") for key in secrets.older_keys()),
        organizer_copy=settings.organizer_copy,
    )


async def close_services(services: AppServices) -> None:
    await services.tasks.close()
    services.registry.close()
    await services.http.aclose()
    await services.db.dispose()
