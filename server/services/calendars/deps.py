"""What calendar services need from the process, and how stored credentials are opened."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from server.models import CalendarConnection
from server.models.enums import ProviderName
from server.providers.base import Credentials
from server.providers.org_base import AdminConsent, DirectoryFactory
from server.providers.registry import ProviderRegistry
from server.providers.secrets import SecretBox, SecretError


@dataclass(frozen=True, slots=True)
class CalendarDeps:
    registry: ProviderRegistry
    secrets: SecretBox
    base_url: str
    horizon_days: int = 60
    max_age_seconds: int = 900
    push_enabled: bool = False
    # Organization-wide integrations (``services.integrations``): how to build a
    # directory from an integration's configuration, and Microsoft's admin consent.
    directories: DirectoryFactory | None = None
    admin_consent: AdminConsent | None = None

    def redirect_uri(self, provider: ProviderName) -> str:
        return f"{self.base_url.rstrip('/')}/calendar/callback/{provider.value}"


def secret_binding(user_id: uuid.UUID) -> str:
    """Ties a ciphertext to its owner: copied into another user's row it will not open."""
    return f"calendar:{user_id}"


def load_credentials(secrets: SecretBox, connection: CalendarConnection) -> Credentials:
    if connection.encrypted_secret is None:
        raise SecretError("no stored credentials")
    secret = secrets.decrypt(
        connection.encrypted_secret, binding=secret_binding(connection.user_id)
    )
    return Credentials(provider=connection.provider, secret=secret)


def save_refreshed_credentials(
    secrets: SecretBox, connection: CalendarConnection, credentials: Credentials
) -> None:
    """Persist tokens a provider refreshed during a call (Microsoft rotates refresh tokens:
    losing the new one would lose the grant). A no-op when nothing changed."""
    if credentials.changed:
        connection.encrypted_secret = secrets.encrypt(
            credentials.secret, binding=secret_binding(connection.user_id)
        )
        credentials.changed = False
