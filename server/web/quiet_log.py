"""Log lines that strangers can trigger at will, rate-limited so nobody floods the log."""

from __future__ import annotations

import logging
import threading
import time
import traceback
import uuid
from pathlib import Path


class RateLimitedLog:
    """At most ``per_window`` lines per ``window_seconds``; the rest are counted and the
    count is written with the first line of the next window."""

    def __init__(self, logger: logging.Logger, per_window: int = 20, window_seconds: float = 60):
        self.logger = logger
        self.per_window = per_window
        self.window_seconds = window_seconds
        self._lock = threading.Lock()
        self._window_start = 0.0
        self._written = 0
        self._suppressed = 0

    def log(self, level: int, message: str, *args: object) -> bool:
        """Write the line unless the window is full; returns whether it was written."""
        if not self.logger.isEnabledFor(level):
            return False
        with self._lock:
            now = time.monotonic()
            if now - self._window_start >= self.window_seconds:
                suppressed, self._suppressed = self._suppressed, 0
                self._window_start, self._written = now, 0
                if suppressed:
                    self.logger.log(level, "%d similar lines were not logged", suppressed)
            if self._written >= self.per_window:
                self._suppressed += 1
                return False
            self._written += 1
        self.logger.log(level, message, *args)
        return True

    def reset(self) -> None:
        with self._lock:
            self._window_start, self._written, self._suppressed = 0.0, 0, 0

    def info(self, message: str, *args: object) -> bool:
        return self.log(logging.INFO, message, *args)


bad_requests = RateLimitedLog(logging.getLogger("tandem.requests"))
"""Refused requests, client disconnects and refused GraphQL documents."""


def new_request_id() -> str:
    """A short id to find one request's log lines without logging what it asked."""
    return uuid.uuid4().hex[:12]


def exception_summary(exc: BaseException) -> str:
    """The exception's type and innermost frame, without its message (which may quote
    user input or a secret)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {Path(last.filename).name}:{last.lineno} in {last.name}"
