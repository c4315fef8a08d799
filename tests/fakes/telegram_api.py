"""Moved to `devtools.fakes.telegram_api` (the chaos run uses it too); import it from there.

This name stays so that branches written before the move still import it.
"""

from devtools.fakes.telegram_api import *  # noqa: F403
from devtools.fakes.telegram_api import FakeBotApi
from devtools.fakes.telegram_wire import JsonDict

__all__ = ["FakeBotApi", "JsonDict"]
