"""The one dispatcher: every typed event a part emits reaches every subscriber, in order.

Built once by the composition layer and handed to the parts as their `emit`. Subscribers run
at once, on the loop, in the order they subscribed; one that raises is logged and the others
still hear the event, so a broken destination never reaches the part that acted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from supervisor.happenings import Happening

log = logging.getLogger(__name__)

Subscriber = Callable[[Happening], None]


class Dispatcher:
    """Producers call `emit`; destinations `subscribe`."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        """Hear every event from now on."""
        self._subscribers.append(subscriber)

    def emit(self, event: Happening) -> None:
        """Hand `event` to every subscriber; never raises."""
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:  # a destination's trouble must never reach the producer
                log.exception("a subscriber failed on %s", type(event).__name__)
