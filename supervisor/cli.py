"""The `supervisor` command: run, check-config, status."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from supervisor import __version__, config, logs, render
from supervisor.errors import EXIT_CONFIG, ConfigError

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
    check = sub.add_parser("check-config", help="validate the config and show what is watched")
    check.add_argument("--config", type=Path)
    status = sub.add_parser("status", help="show the running supervisor's /health as a table")
    status.add_argument("--url", help="the /health URL (default: from the config, else :5051)")
    status.add_argument("--config", type=Path)
    status.add_argument("--json", action="store_true", help="print the raw health document")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args.config, args.log_level)
    if args.command == "check-config":
        return _check_config(args.config)
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
        print(f"  {t.name:<20} {t.unit}{suffix}")
    return 0


def _run(path: Path | None, level: str) -> int:
    logs.setup(level)
    try:
        cfg = config.load(path)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("bad config %s: %s", exc.path, problem)
        return EXIT_CONFIG
    from supervisor.daemon import Daemon  # imported late: check-config stays fast

    async def serve() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await Daemon(cfg).run(stop)
        except OSError as exc:
            log.error("cannot serve on %s:%d: %s", cfg.http.host, cfg.http.port, exc.strerror)
            return 1
        return 0

    return asyncio.run(serve())


def _status(url: str | None, path: Path | None, raw: bool) -> int:
    if url is None:
        url = "http://127.0.0.1:5051/health"
        try:
            cfg = config.load(path)
            url = f"http://{cfg.http.host}:{cfg.http.port}/health"
        except ConfigError:
            pass  # no usable config: the default address is the best guess
    try:
        doc = _fetch(url)
    except (OSError, ValueError) as exc:
        print(f"cannot read {url}: {exc}", file=sys.stderr)
        return STATUS_UNREACHABLE
    print(json.dumps(doc, indent=2) if raw else render.table(doc))
    return STATUS_EXIT.get(str(doc.get("status")), STATUS_UNREACHABLE)


def _fetch(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()  # 503 still carries the health document
    doc = json.loads(body)
    if not isinstance(doc, dict):
        raise ValueError("not a health document")
    return doc
