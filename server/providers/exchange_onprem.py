"""Exchange on-premises through EWS and a service account (exchangelib).

Placeholder with the agreed constructor; the implementation replaces it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from server.config import Settings


class ExchangeOnPremDirectory:
    max_people_per_call = 1
    max_window_days = 1

    def __init__(
        self, settings: Settings, http: httpx.AsyncClient, config: Mapping[str, Any]
    ) -> None:
        raise NotImplementedError("ExchangeOnPremDirectory is not built yet")
