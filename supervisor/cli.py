"""The `supervisor` command: run, check-config, status, events, why, alert-test, reset,
hold, release, holds, last-word, doctor, backup, restore."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from supervisor import __version__, config, hold_cli, risks, why
from supervisor.alerts import lastword
from supervisor.api import render
from supervisor.config import API_KEY_HEADER, probe_ids
from supervisor.config.file import ConfigFile
from supervisor.errors import EXIT_ALREADY_RUNNING, EXIT_CONFIG, AlreadyRunningError, ConfigError
from supervisor.history import report
from supervisor.ops import commands as ops
from supervisor.runtime import limits, logs, tls
from supervisor.runtime.state import write_private

log = logging.getLogger("supervisor")

# `supervisor status` exit codes follow the monitoring-plugin convention.
STATUS_EXIT = {"pass": 0, "warn": 1, "fail": 2}
STATUS_UNREACHABLE = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="supervisor", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon in the foreground")
    run.add_argument("--config", type=Path, help=f"config file (default: {config.default_path()})")
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="decide and log recovery actions without carrying any out",
    )
    check = sub.add_parser("check-config", help="validate the config and show what is watched")
    check.add_argument("--config", type=Path)
    check.add_argument(
        "--online", action="store_true", help="also check the Telegram bot token with the Bot API"
    )
    test = sub.add_parser("alert-test", help="send a test message through the alert channel")
    test.add_argument("--config", type=Path)
    status = sub.add_parser("status", help="show the running supervisor's /health as a table")
    status.add_argument("--url", help="the /health URL (default: from the config, else :5051)")
    status.add_argument("--config", type=Path)
    status.add_argument("--json", action="store_true", help="print the raw health document")
    last = sub.add_parser(
        "last-word", help="tell the Telegram chats that the supervisor's unit failed for good"
    )
    last.add_argument("--config", type=Path)
    last.add_argument("--unit", default=lastword.UNIT, help="the failed unit")
    last.add_argument(
        "--within", type=float, default=lastword.WITHIN_S, metavar="SECONDS", help="retry until"
    )
    events = sub.add_parser("events", help="print the timeline of events (and follow it)")
    events.add_argument("--target", help="only this target's events")
    events.add_argument("--kind", help="only this kind (status, unit, recovery, alert, ...)")
    events.add_argument("--since", help="from this long ago (2h, 30m, 7d) or this time")
    events.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    events.add_argument("--follow", "-f", action="store_true", help="then print new ones live")
    events.add_argument("--url", help="the supervisor's base URL (default: from the config)")
    events.add_argument("--config", type=Path)
    reset = sub.add_parser("reset", help="clear a given-up target so it is retried at once")
    reset.add_argument("target")
    reset.add_argument("--url", help="the supervisor's base URL (default: from the config)")
    reset.add_argument("--config", type=Path)
    ops.add_parsers(sub)  # doctor, backup, restore
    hold = sub.add_parser("hold", help="no restarts and no alerts for a target for a while")
    hold.add_argument("target")
    hold.add_argument("--for", dest="span", help="45s, 20m, 2h (default 30m, at most 24h)")
    hold.add_argument("--reason", default="", help="why (shown in /health, the page, history)")
    hold.add_argument("--config", type=Path)
    release = sub.add_parser("release", help="end a hold (recovery and alerts start afresh)")
    release.add_argument("target", nargs="?")
    release.add_argument("--all", action="store_true", help="end every hold")
    release.add_argument("--config", type=Path)
    holds = sub.add_parser("holds", help="list the holds in force")
    holds.add_argument("--config", type=Path)
    why.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args.config, args.log_level, args.dry_run)
    if args.command == "check-config":
        code = _check_config(args.config)
        return code if code or not args.online else _online(args.config, send=False)
    if args.command == "alert-test":
        return _online(args.config, send=True)
    if args.command == "reset":
        return _reset(args.target, args.url, args.config)
    if args.command == "last-word":
        logs.setup("INFO")
        return lastword.run(args.config, args.unit, args.within)
    if args.command == "events":
        return _events(args)
    if args.command == "why":
        return why.run(args, lambda path: _base_url(path)[0])
    if args.command in ops.COMMANDS:
        return ops.main(args)
    if args.command in ("hold", "release", "holds"):
        return hold_cli.run(args)
    return _status(args.url, args.config, args.json)


def _print_config_error(exc: ConfigError) -> None:
    print(f"{exc.path}: invalid configuration", file=sys.stderr)
    for problem in exc.problems:
        print(f"{exc.path}: {problem}", file=sys.stderr)


def _check_config(path: Path | None) -> int:
    try:
        cfg = config.load(path)
    except ConfigError as exc:
        _print_config_error(exc)
        return EXIT_CONFIG
    print(f"{path or config.default_path()}: OK")
    print(f"serving on http://{cfg.http.host}:{cfg.http.port} (/health, /metrics)")
    print(f"watching {len(cfg.targets)} targets:")
    for t in cfg.targets:
        extras = ["critical"] if t.critical else []
        if t.ports:
            extras.append("ports " + ",".join(str(p) for p in t.ports))
        suffix = f" ({'; '.join(extras)})" if extras else ""
        probes = ", ".join(probe_ids(t))
        print(f"  {t.name:<20} {t.unit or '(the host)'}{suffix}{f': {probes}' if probes else ''}")
    names = risks.overrides(os.environ).values()
    if names:
        print("environment overrides: " + ", ".join(names))
    for line in _risks(cfg):
        print(f"warning: {line}", file=sys.stderr)
    return 0


def _risks(cfg: config.Config) -> list[str]:
    """What check-config warns about (and `run` logs at start)."""
    telegram = cfg.alerts.telegram
    mode = None
    if telegram is not None and telegram.token_file is not None:
        # A missing file is reported where it is read (--online, alert-test, run).
        with contextlib.suppress(OSError):
            mode = telegram.token_file.stat().st_mode
    return risks.warnings(cfg, os.environ, mode)


def _online(path: Path | None, send: bool) -> int:
    """Check the token with getMe (and send a test message): success or the exact failure."""
    try:
        cfg = config.load(path)
    except ConfigError as exc:
        _print_config_error(exc)
        return EXIT_CONFIG
    telegram = cfg.alerts.telegram
    if telegram is None:
        print("no [alerts.telegram] section: alerts are only logged", file=sys.stderr)
        return 1
    try:
        token = telegram.read_token()
    except OSError as exc:
        print(f"cannot read {telegram.token_file}: {exc.strerror}", file=sys.stderr)
        return 1
    from supervisor.alerts.policy import Alert, Severity, format_html
    from supervisor.alerts.telegram import TelegramChannel
    from supervisor.errors import ChannelError

    async def attempt() -> int:
        channel = TelegramChannel(token, telegram.api_url, telegram.timeout_s, tls=tls.client)
        try:
            name = await channel.connect()
            print(f"Telegram: the token is valid (bot @{name})")
            if send:
                alert = Alert(
                    key="test",
                    target="supervisor",
                    severity=Severity.INFO,
                    summary="test message from supervisor alert-test",
                    at=time.time(),
                )
                for chat_id in telegram.chat_ids:
                    await channel.send(chat_id, format_html(alert, socket.gethostname()))
                    print(f"Telegram: test message delivered to chat {chat_id}")
        except ChannelError as exc:
            print(f"Telegram: {exc}", file=sys.stderr)
            return 1
        finally:
            await channel.close()
        return 0

    return asyncio.run(attempt())


def _run(path: Path | None, level: str, dry_run: bool) -> int:
    logs.setup(level)
    source = ConfigFile(path, write_private)  # keeps each config in force for the last word
    try:
        checked = source.begin()
        # The daemon's modules load while the config is checked in its child (0.3 s each).
        with limits.lean_imports():  # 3.5 MB less RSS, see runtime/limits.py
            from supervisor.app.daemon import Daemon  # imported late: check-config stays fast
        cfg = checked()
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("bad config %s: %s", exc.path, problem)
        return EXIT_CONFIG
    if dry_run:
        cfg = dataclasses.replace(cfg, dry_run=True)
    for line in _risks(cfg):
        log.warning("config: %s", line)
    limits.raise_nofile()  # probes, D-Bus and HTTP share our descriptors: take all we may

    async def serve() -> int:
        stop, reload = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, reload.set)
        daemon = Daemon(
            cfg, load_config=lambda: _reloaded(source, dry_run), keep_config=source.keep
        )
        try:
            return await daemon.run(stop, reload)
        except AlreadyRunningError as exc:
            log.error("%s", exc)
            return EXIT_ALREADY_RUNNING
        except OSError as exc:
            log.error("cannot serve on %s:%d: %s", cfg.http.host, cfg.http.port, exc.strerror)
            return 1

    return asyncio.run(serve())


def _reloaded(source: ConfigFile, dry_run: bool) -> config.Config:
    cfg = source.load()
    return dataclasses.replace(cfg, dry_run=True) if dry_run else cfg


def _base_url(path: Path | None) -> tuple[str, str | None]:
    """The supervisor's base URL and API key from the config; defaults without one."""
    try:
        cfg = config.load(path)
    except ConfigError:
        return "http://127.0.0.1:5051", None  # no usable config: the default is the best guess
    key = cfg.http.api_key.get_secret_value() if cfg.http.api_key else None
    return f"http://{cfg.http.host}:{cfg.http.port}", key


def _reset(target: str, url: str | None, path: Path | None) -> int:
    base, key = _base_url(path)
    request = urllib.request.Request(
        f"{url or base}/targets/{urllib.parse.quote(target)}/reset",
        method="POST",
        headers={API_KEY_HEADER: key or ""},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            print(f"{target}: recovery reset; it will be retried at once ({resp.status})")
            return 0
    except urllib.error.HTTPError as exc:
        reason = json.loads(exc.read() or b"{}").get("error", exc.reason)
        print(f"reset {target} refused ({exc.code}): {reason}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"cannot reach the supervisor at {url or base}: {exc}", file=sys.stderr)
        return STATUS_UNREACHABLE


def _status(url: str | None, path: Path | None, raw: bool) -> int:
    if url is None:
        url = _base_url(path)[0] + "/health"
    try:
        doc = _fetch(url)
    except (OSError, ValueError) as exc:
        print(f"cannot read {url}: {exc}", file=sys.stderr)
        return STATUS_UNREACHABLE
    if raw:
        print(json.dumps(doc, indent=2))
    else:
        print(render.table(doc))
        try:  # history is extra: a supervisor without it still has a status
            print("\n" + report.uptime_table(_fetch(url.rsplit("/health", 1)[0] + "/history")))
        except (OSError, ValueError) as exc:
            print(f"\n(no history: {exc})")
    return STATUS_EXIT.get(str(doc.get("status")), STATUS_UNREACHABLE)


def _events(args: argparse.Namespace) -> int:
    """Print the timeline, oldest first; with --follow, then every new event as it comes."""
    base = args.url or _base_url(args.config)[0]
    params = {"target": args.target, "kind": args.kind, "since": args.since, "limit": args.limit}
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    try:
        page = _fetch(f"{base}/events?{query}")
    except (OSError, ValueError) as exc:
        print(f"cannot read {base}/events: {exc}", file=sys.stderr)
        return STATUS_UNREACHABLE
    if "error" in page:
        print(f"events: {page['error']}", file=sys.stderr)
        return 2
    for doc in reversed(page.get("events", [])):
        print(report.event_line(doc))
    if page.get("unavailable"):
        print(f"(history unavailable: {page['unavailable']}; showing what is in memory)")
    if not args.follow:
        return 0
    try:
        return _follow(f"{base}/events/stream", args.target, args.kind)
    except KeyboardInterrupt:
        return 0


def _follow(url: str, target: str | None, kind: str | None) -> int:
    """Read the event stream and print what matches; reconnect when it drops."""
    while True:
        try:
            # The server pings every 15 s: a read that waits 60 s means the stream is dead.
            with urllib.request.urlopen(url, timeout=60) as resp:
                for raw in resp:
                    line = raw.decode("utf-8", "replace")
                    if not line.startswith("data: "):
                        continue
                    doc = json.loads(line[6:])
                    if target in (None, doc.get("target")) and kind in (None, doc.get("kind")):
                        print(report.event_line(doc), flush=True)
        except (OSError, ValueError) as exc:
            print(f"(stream lost: {exc}; reconnecting)", file=sys.stderr, flush=True)
        time.sleep(2.0)  # a person is watching: a steady, slow retry


def _fetch(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        if exc.code != 503:  # 429 (throttled), 421 (Host not served): an error, said plainly
            reason = exc.headers.get("Retry-After")
            raise OSError(
                f"HTTP {exc.code} {exc.reason}" + (f", retry after {reason} s" if reason else "")
            ) from None
        body = exc.read()  # 503 still carries the health document
    doc = json.loads(body)
    if not isinstance(doc, dict):
        raise ValueError("not a health document")
    return doc
