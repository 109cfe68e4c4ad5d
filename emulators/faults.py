"""Injected failures, shared by the emulators: "the next N requests to this path fail"."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass
class Fault:
    path_substring: str
    status: int
    body: Any
    headers: dict[str, str]
    remaining: int
    method: str | None = None  # None: any method
    delay: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return (
            self.path_substring in path
            and self.remaining > 0
            and (self.method is None or self.method.upper() == method.upper())
        )


class FaultInjection:
    """Mixin for an emulator's state; the state provides ``lock`` and ``faults``."""

    lock: threading.RLock
    faults: list[Fault]

    def fail_next(
        self,
        path_substring: str,
        status: int,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
        method: str | None = None,
    ) -> None:
        """The next ``times`` requests whose path contains ``path_substring`` (and, when
        given, whose method is ``method``) fail before anything is done."""
        with self.lock:
            self.faults.append(
                Fault(path_substring, status, body, dict(headers or {}), times, method=method)
            )

    def take_fault(self, path: str, method: str = "GET") -> Fault | None:
        """The fault for this request, if any (faults injected without a method match
        every method)."""
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self.faults.remove(fault)
                    return fault
            return None
