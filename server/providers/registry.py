"""Picks a provider implementation by name. Built once per process with the shared client."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from server.config import Settings
from server.providers.base import CalendarProvider, OAuthProvider, PasswordProvider, ProviderName
from server.providers.caldav import CalDAVProvider
from server.providers.google import GoogleProvider
from server.providers.microsoft import MicrosoftProvider

TANDEM_UID_SUFFIX = "@tandem"


def owns_uid(uid: str) -> bool:
    """Whether an event UID is one of Tandem's meetings."""
    return uid.endswith(TANDEM_UID_SUFFIX)


class ProviderRegistry:
    def __init__(self, providers: Mapping[ProviderName, CalendarProvider]) -> None:
        self._providers = dict(providers)

    @classmethod
    def build(cls, settings: Settings, http: httpx.AsyncClient) -> ProviderRegistry:
        return cls(
            {
                ProviderName.GOOGLE: GoogleProvider(settings, http),
                ProviderName.MICROSOFT: MicrosoftProvider(settings, http, owns_uid=owns_uid),
                ProviderName.ICLOUD: CalDAVProvider(settings),
            }
        )

    def get(self, name: ProviderName) -> CalendarProvider:
        return self._providers[name]

    def oauth(self, name: ProviderName) -> OAuthProvider | None:
        provider = self._providers.get(name)
        return provider if isinstance(provider, OAuthProvider) else None

    def password(self, name: ProviderName) -> PasswordProvider | None:
        provider = self._providers.get(name)
        return provider if isinstance(provider, PasswordProvider) else None

    def close(self) -> None:
        for provider in self._providers.values():
            close = getattr(provider, "close", None)
            if callable(close):
                close()
