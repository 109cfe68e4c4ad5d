"""What one Tandem process shares across requests, built once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from jinja2 import Environment

from server.config import Settings
from server.db import Database
from server.providers.registry import ProviderRegistry
from server.providers.secrets import SecretBox
from server.services.calendars.deps import CalendarDeps
from server.services.invites import Mailer


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
