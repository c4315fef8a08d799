"""Saying a repeated thing once per window: one line per category, then the count of those
held back. Pure: the HTTP adapter uses it for the lines clients' malformed requests cause."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

TALLY_WINDOW_S = 60.0


class Tally:
    """One line per category per window, then the count of those held back. Pure."""

    def __init__(self, clock: Callable[[], float], window_s: float = TALLY_WINDOW_S) -> None:
        self._clock = clock
        self.window_s = window_s
        self._seen: dict[str, tuple[float, int]] = {}

    def note(self, category: str) -> int | None:
        """None to stay quiet; else the number held back since the last line (say it now)."""
        now = self._clock()
        first, held = self._seen.get(category, (0.0, -1))
        if held >= 0 and now - first < self.window_s:
            self._seen[category] = (first, held + 1)
            return None
        self._seen[category] = (now, 0)
        return max(0, held)


class ClientErrorLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's log of requests it could not parse: a client's doing, not ours. One warning
    line naming the category (the exception's class) and the client, never the message:
    aiohttp's messages quote the offending header line, and a key may be in it. What counts
    as the client's doing (`client_errors`) is the HTTP adapter's to say."""

    def __init__(
        self,
        logger: logging.Logger,
        tally: Tally,
        client_errors: tuple[type[BaseException], ...],
    ) -> None:
        super().__init__(logger, {})
        self._tally = tally
        self._client_errors = client_errors

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        """Debug lines are dropped (they quote requests too); errors become counted lines."""
        if level < logging.ERROR:
            return
        exc = kwargs.get("exc_info")
        category = type(exc).__name__ if isinstance(exc, BaseException) else "error"
        client = args[0] if args and isinstance(args[0], str) else "unknown"
        held = self._tally.note(category)
        if held is None:
            return
        more = f" (and {held} more in the last {self._tally.window_s:.0f} s)" if held else ""
        if isinstance(exc, self._client_errors):
            self.logger.warning("refused a malformed request from %s: %s%s", client, category, more)
        else:  # not the client's doing: one of ours, said as such (still without its text)
            self.logger.error("serving a request from %s failed: %s%s", client, category, more)
