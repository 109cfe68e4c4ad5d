"""Every knob Tandem has, read from the environment with the prefix ``TANDEM_``.

Settings are immutable once built; tests and the demo build their own instance instead
of mutating a global. Provider base URLs live here so that the same provider code talks
to the real services or to the local emulators.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "demo", "test", "production"]


DEFAULT_POOL_SIZE = 10
"""Above the 8 requests or tasks a node typically runs at once: with SQLAlchemy's default
of 5, every burst opened and closed overflow connections (a new SQLite connection and its
thread, or a new PostgreSQL session), which doubled the p99 of 8 concurrent requests."""


class Settings(BaseSettings):
    """Configuration for one Tandem process (server, worker or CLI)."""

    model_config = SettingsConfigDict(env_prefix="TANDEM_", extra="ignore", frozen=True)

    env: Environment = "development"
    data_dir: Path = Path("./var")
    database_url: str | None = None
    database_pool_size: int = Field(
        default=DEFAULT_POOL_SIZE,
        ge=1,
        le=200,
        description="Database connections one process keeps open; up to 10 more open "
        "for a burst and close after it.",
    )
    base_url: str = "http://127.0.0.1:8000"
    secret_keys: SecretStr | None = Field(
        default=None, description="Comma-separated Fernet keys, newest first."
    )
    graphiql: bool | None = Field(
        default=None, description="Serve GraphiQL on GET /graphql; default: on outside production."
    )

    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    mail_from: str = "Tandem <tandem@localhost>"
    organizer_copy: bool = Field(
        default=True,
        description="Email organizers a copy of each invitation, change and cancellation "
        "Tandem sends for them (no answer links), so they see what attendees received.",
    )

    google_client_id: str | None = None
    google_client_secret: SecretStr | None = None
    google_auth_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    google_token_url: str = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
    google_revoke_url: str = "https://oauth2.googleapis.com/revoke"
    google_api_base: str = "https://www.googleapis.com/calendar/v3"

    microsoft_client_id: str | None = None
    microsoft_client_secret: SecretStr | None = None
    microsoft_authority: str = "https://login.microsoftonline.com/common"
    microsoft_graph_base: str = "https://graph.microsoft.com/v1.0"
    microsoft_sign_in_origin: str | None = Field(
        default=None,
        description="Origin of Microsoft's sign-in page when it differs from the authority's "
        "(the local demo serves it over plain http so browsers show no certificate warning); "
        "allowed as a form-action in the CSP. Unset for the real service.",
    )
    microsoft_ca_bundle: Path | None = Field(
        default=None,
        description="Extra CA certificate (PEM) trusted for the Microsoft identity endpoints; "
        "only the local emulator needs it.",
    )

    ews_ca_bundle: Path | None = Field(
        default=None,
        description="CA certificates (PEM) trusted instead of the system store for Exchange "
        "on-premises EWS servers: a company CA, or the local emulator's.",
    )

    caldav_default_url: str = "https://caldav.icloud.com"
    caldav_allow_private_hosts: bool = Field(
        default=False,
        description="Allow CalDAV server URLs on loopback or private networks (demo and tests).",
    )

    push_notifications: bool | None = Field(
        default=None,
        description="Ask Google and Microsoft to push calendar changes to /webhooks/*; "
        "default: on when BASE_URL is https (the providers call only HTTPS endpoints).",
    )
    sync_max_age_seconds: int = 900
    caldav_check_seconds: int = Field(
        default=30,
        ge=5,
        le=60,
        description="How often recently active users' CalDAV calendars are checked for "
        "changes (getctag / sync-token); a full read follows only a change.",
    )
    caldav_check_concurrency: int = Field(
        default=20,
        ge=1,
        le=200,
        description="CalDAV change checks in flight at once (per process running the job).",
    )
    caldav_active_days: int = Field(
        default=14,
        ge=1,
        le=365,
        description="Users who signed in, used an API token or were asked about within "
        "this many days get the frequent CalDAV change check.",
    )
    sync_horizon_days: int = 60
    provider_timeout_seconds: float = 10.0
    task_queue: Literal["auto", "embedded", "procrastinate"] = Field(
        default="auto",
        description="Where background tasks go: procrastinate (jobs in PostgreSQL, run by "
        "`tandem worker`) or the in-process queue; auto: procrastinate on PostgreSQL.",
    )
    worker_concurrency: int = Field(
        default=8, ge=1, le=100, description="Tasks one `tandem worker` runs at once."
    )
    worker_stalled_seconds: float = Field(
        default=30.0,
        ge=1.0,
        le=3600.0,
        description="A worker silent this long is taken for dead and its jobs are retried.",
    )
    run_jobs_in_process: bool = Field(
        default=True,
        description="Run background jobs inside `tandem serve`; turn off when `tandem worker` runs them.",
    )

    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Reverse proxies trusted for X-Forwarded-For/Proto (comma-separated, or *); "
        "sign-in throttling per client address depends on it behind a proxy.",
    )
    session_max_age_seconds: int = 14 * 24 * 3600
    login_attempts_per_window: int = 10
    login_window_seconds: int = 300
    http_header_timeout_seconds: float = Field(
        default=10.0,
        description="A connection must finish sending a request's headers within this time.",
    )
    http_body_timeout_seconds: float = Field(
        default=30.0, description="A request body must arrive within this time (else 408)."
    )
    http_keep_alive_seconds: int = Field(
        default=5, description="Idle keep-alive connections are closed after this time."
    )
    http_max_header_bytes: int = Field(
        default=16 * 1024, description="Request line and headers larger than this get a 400."
    )

    @cached_property
    def resolved_database_url(self) -> str:
        """The configured database URL, or a SQLite file inside the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'tandem.db').resolve()}"

    @property
    def uses_procrastinate(self) -> bool:
        if self.task_queue != "auto":
            return self.task_queue == "procrastinate"
        return self.resolved_database_url.startswith("postgresql")

    @property
    def graphiql_enabled(self) -> bool:
        if self.graphiql is not None:
            return self.graphiql
        return self.env != "production"

    @property
    def push_enabled(self) -> bool:
        if self.push_notifications is not None:
            return self.push_notifications
        return self.base_url.startswith("https://")

    @property
    def secure_cookies(self) -> bool:
        """Cookies carry ``Secure`` (and the ``__Host-`` prefix) whenever Tandem is served over HTTPS."""
        return self.base_url.startswith("https://")
