"""The HTTP server, wired from the config: the app (throttled, Host-checked, key-guarded) on a
capped site, reading what is in force through `Current`."""

from __future__ import annotations

from supervisor.api.metrics import Metrics
from supervisor.api.server import HealthApp, Routes, served_hosts
from supervisor.api.transport import HttpServer, HttpSettings
from supervisor.app.fleet import Current
from supervisor.app.holding import HoldDesk
from supervisor.config import Config
from supervisor.guard.throttle import Throttle
from supervisor.model import Clock
from supervisor.runtime import logs


def http_server(
    config: Config,
    now: Current,
    metrics: Metrics,
    clock: Clock,
    throttle: Throttle,
    *,
    routes: list[Routes],
    desk: HoldDesk | None = None,
) -> HttpServer:
    """The HTTP server: the app (throttled, Host-checked, key-guarded) on a capped site."""
    http = config.http
    key = http.api_key.get_secret_value() if http.api_key else None
    if key:
        logs.redact(key)  # like the bot token: never in a log line, however it got there
    reset = lambda name: now.fleet.repairer.reset(name)  # noqa: E731, PLW0108 (late-bound)
    app = HealthApp(
        now.snapshot,
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
    return HttpServer(app.build(), settings, activity=throttle.seen, charge=charge)
