"""The HTTP server, wired from the config: the app (throttled, Host-checked, key-guarded) on a
capped site, over the fleet's snapshot and reset it is handed (a reload hands the app the new
fleet's: `HealthApp.use`)."""

from __future__ import annotations

from collections.abc import Callable

from supervisor.api.metrics import Metrics
from supervisor.api.server import HealthApp, Routes, served_hosts
from supervisor.api.transport import HttpServer, HttpSettings
from supervisor.app.holding import HoldDesk
from supervisor.config import Config
from supervisor.guard.throttle import Throttle
from supervisor.model import Clock, Snapshot
from supervisor.runtime import logs


def http_server(
    config: Config,
    metrics: Metrics,
    clock: Clock,
    throttle: Throttle,
    *,
    snapshot: Callable[[], Snapshot],
    reset: Callable[[str], bool],
    routes: list[Routes],
    desk: HoldDesk | None = None,
) -> tuple[HttpServer, HealthApp]:
    """The HTTP server: the app (throttled, Host-checked, key-guarded) on a capped site."""
    http = config.http
    key = http.api_key.get_secret_value() if http.api_key else None
    if key:
        logs.redact(key)  # like the bot token: never in a log line, however it got there
    app = HealthApp(
        snapshot,
        metrics.render,
        clock=clock,
        throttle=throttle,
        hosts=served_hosts(http.host, http.port, http.allowed_hosts),
        reset=reset,
        holds=desk,
        api_key=key,
        routes=routes,
    )
    settings = HttpSettings(http.host, http.port, http.access_log, http.max_connections)
    charge = lambda client, cpu_s: throttle.charge(client, cpu_s, clock.monotonic())  # noqa: E731
    return HttpServer(app.build(), settings, activity=throttle.seen, charge=charge), app
