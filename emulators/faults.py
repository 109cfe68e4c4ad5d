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
    ) -> None:
        """The next ``times`` requests whose path contains ``path_substring`` fail."""
        with self.lock:
            self.faults.append(Fault(path_substring, status, body, dict(headers or {}), times))

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.path_substring in path and fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self.faults.remove(fault)
                    return fault
            return None
