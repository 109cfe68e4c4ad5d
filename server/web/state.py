"""What one Tandem process shares across requests, built once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from jinja2 import Environment

from server.config import Settings
from server.db import Database
from server.providers.secrets import SecretBox


@dataclass
class AppServices:
    settings: Settings
    db: Database
    secrets: SecretBox
    http: httpx.AsyncClient
    templates: Environment
    providers: dict[str, Any] = field(default_factory=dict)
