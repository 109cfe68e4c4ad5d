"""Builds an organization-wide directory by integration kind (the composition root hands
``build_directory`` to services as their ``DirectoryFactory``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from server.config import Settings
from server.providers.base import ProviderMisconfigured
from server.providers.exchange_onprem import ExchangeOnPremDirectory
from server.providers.google_workspace import GoogleWorkspaceDirectory
from server.providers.microsoft_org import ExchangeOnlineDirectory, admin_consent_url
from server.providers.microsoft_org import read_admin_consent as _read_admin_consent
from server.providers.org_base import DirectoryFactory, OrgDirectory


class ExchangeOnlineConsent:
    """``AdminConsent`` for Tandem's Microsoft app registration."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def consent_url(self, tenant: str, redirect_uri: str, state: str) -> str:
        return admin_consent_url(self._settings, tenant, redirect_uri, state)

    def read_consent(self, params: Mapping[str, str]) -> str:
        return _read_admin_consent(params)


def directory_factory(settings: Settings, http: httpx.AsyncClient) -> DirectoryFactory:
    def build(kind: str, config: Mapping[str, Any]) -> OrgDirectory:
        if kind == "exchange_online":
            return ExchangeOnlineDirectory(settings, http, config)
        if kind == "google_workspace":
            return GoogleWorkspaceDirectory(settings, http, config)
        if kind == "exchange_onprem":
            return ExchangeOnPremDirectory(settings, http, config)
        raise ProviderMisconfigured(f"unknown integration kind {kind[:20]!r}")

    return build
