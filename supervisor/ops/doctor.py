"""`supervisor doctor`: ask the machine, systemd and Telegram, and judge each answer.

A joiner of the ops room: the facts come from the adapters (`ops.host`, the typed D-Bus
front end, the Telegram channel, the port scanner), the verdicts from `ops.judge`. Nothing
here changes anything, except a test message with `send_test`.
"""

from __future__ import annotations

import asyncio
import getpass
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from supervisor import config
from supervisor.alerts.policy import Alert, Severity, format_html
from supervisor.errors import BusError, ChannelError, ConfigError, TokenRejectedError
from supervisor.history.store import FILE_NAME
from supervisor.model import UnitState
from supervisor.ops import host, judge, reading
from supervisor.ops.findings import Finding
from supervisor.recovery.ports import find_holders
from supervisor.redaction import Redactor
from supervisor.watch.systemd import UNIT as UNIT_IFACE
from supervisor.watch.systemd import Systemd, bus_address

_CALL_TIMEOUT_S = 5.0
ISSUES = "https://github.com/sidecar-supervisor/sidecar-supervisor/issues"


@dataclass(slots=True)
class _SystemdFacts:
    error: str | None = None
    units: dict[str, UnitState] = field(default_factory=dict)
    fragment: str | None = None  # our own unit's file, when systemd has it loaded


class _Quiet:
    """The doctor reads units once; it listens to nothing."""

    def unit_changed(self, state: UnitState) -> None:
        """Not needed: states are read with refresh()."""

    def bus_lost(self, reason: str) -> None:
        """Not needed: a lost bus shows as an error of the next call."""


def examine(path: Path | None, send_test: bool = False) -> list[Finding]:
    """Every check, in the order a person fixes things."""
    shown = str(path or config.default_path())
    cfg: config.Config | None = None
    try:
        cfg = config.load(path)
        found = [judge.config_valid(shown, len(cfg.targets))]
    except ConfigError as exc:
        found = [judge.config_invalid(shown, exc.problems)]
    address = bus_address()
    facts = _SystemdFacts()

    def systemd() -> list[Finding]:
        nonlocal facts
        facts = asyncio.run(_ask_systemd(address, cfg.units() if cfg else []))
        return [judge.bus(address, facts.error)]

    user = getpass.getuser()
    steps: list[tuple[str, Callable[[], list[Finding]]]] = [
        ("bus", systemd),
        ("linger", lambda: [judge.linger(user, *host.linger(user))]),
    ]
    if cfg is not None:
        steps.append(
            ("units", lambda: [_unit(t.name, t.unit, facts) for t in cfg.targets if t.unit])
        )
    steps.append(("unit file", lambda: [_unit_file(facts.fragment)]))
    if cfg is not None:
        steps.append(("daemon", lambda: _daemon_checks(cfg)))
        steps.append(
            ("telegram", lambda: judge.telegram(asyncio.run(_ask_telegram(cfg, send_test))))
        )
    steps.append(("journal", lambda: [judge.journal(*host.journal())]))
    if cfg is not None:
        steps.append(("budget", lambda: _usage_checks(cfg)))
    secrets = Redactor()
    for value in host.secret_values(cfg):
        secrets.add(value)
    for name, step in steps:
        found += _guarded(name, step, secrets)
    return found


def _guarded(name: str, step: Callable[[], list[Finding]], secrets: Redactor) -> list[Finding]:
    """One check that breaks (a bug, a library's surprise) must not hide the others."""
    try:
        return step()
    except Exception as exc:  # the top of the doctor's loop over checks
        # A library's message may hold a URL with the bot token in it: scrubbed.
        why = secrets.scrub(f"{type(exc).__name__}: {exc}")
        return [Finding.fail(name, f"the check itself failed: {why}", f"report it: {ISSUES}")]


async def _ask_systemd(address: str, units: list[str]) -> _SystemdFacts:
    facts = _SystemdFacts()
    systemd = Systemd(address, [], _CALL_TIMEOUT_S)
    try:
        await systemd.connect(_Quiet())
        for unit in units:
            facts.units[unit] = await systemd.refresh(unit)
        ours = await systemd.refresh(judge.UNIT)
        if ours.load_state == "loaded":
            props = await systemd.get_properties(judge.UNIT, UNIT_IFACE, ("FragmentPath",))
            facts.fragment = str(props["FragmentPath"]) or None
    except BusError as exc:
        facts.error = str(exc)
    finally:
        systemd.close()
    return facts


def _unit(target: str, unit: str, facts: _SystemdFacts) -> Finding:
    state = facts.units.get(unit)
    if state is None:
        return judge.target_unit(judge.UnitFacts(target, unit, "", error=facts.error or "?"))
    return judge.target_unit(
        judge.UnitFacts(target, unit, state.load_state, state.active_state.value)
    )


def _unit_file(fragment: str | None) -> Finding:
    path, text = host.installed_unit(fragment)
    template = host.shipped_unit()
    if path is None or template is None:
        return judge.unit_file(path, template, [])
    diffs = ["cannot read it"] if text is None else reading.unit_differences(template, text)
    return judge.unit_file(path, template, diffs)


def base_url(cfg: config.Config) -> str:
    """Where the daemon of this config answers (a wildcard bind is asked on loopback)."""
    h = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(cfg.http.host, cfg.http.host)
    return f"http://{f'[{h}]' if ':' in h else h}:{cfg.http.port}"


def _daemon_checks(cfg: config.Config) -> list[Finding]:
    pid = host.lock_pid(cfg.state_dir)
    address = f"{cfg.http.host}:{cfg.http.port}"
    free = host.port_free(cfg.http.host, cfg.http.port)
    holders = [] if free else [(h.pid, h.describe()) for h in find_holders(cfg.http.port)]
    status, error = None, None
    if pid is not None:
        try:
            status = str(host.get_json(f"{base_url(cfg)}/health").get("status"))
        except (OSError, ValueError) as exc:
            error = str(exc)
    need = int(cfg.history.max_mb * judge.MB * 2) if cfg.history.enabled else 0
    history = cfg.state_dir / FILE_NAME
    exists, h_error, events, size = host.history(history)
    return [
        judge.port(address, free, holders, pid),
        judge.daemon(pid, status, error),
        judge.state_dir(host.state_dir(cfg.state_dir, need + judge.MIN_FREE_BYTES)),
        judge.history(
            cfg.history.enabled,
            str(history),
            exists=exists,
            error=h_error,
            events=events,
            size=size,
        ),
    ]


def _usage_checks(cfg: config.Config) -> list[Finding]:
    about, error = None, None
    if host.lock_pid(cfg.state_dir) is None:
        error = "the daemon is not running"
    else:
        try:
            doc = host.get_json(f"{base_url(cfg)}/history").get("supervisor")
            about = doc if isinstance(doc, dict) else None
        except (OSError, ValueError) as exc:
            error = str(exc)
    events = host.breaker_events(cfg.state_dir / FILE_NAME) if cfg.history.enabled else None
    return [
        judge.budget(about, error),
        judge.breaker(events or [], time.time(), known=events is not None),
    ]


async def _ask_telegram(cfg: config.Config, send_test: bool) -> judge.TelegramFacts:
    telegram = cfg.alerts.telegram
    if telegram is None:
        return judge.TelegramFacts(configured=False)
    try:
        token = telegram.read_token()
    except OSError as exc:
        return judge.TelegramFacts(True, token_error=f"cannot read {telegram.token_file}: {exc}")
    # Imported here: python-telegram-bot costs about 9 MB of RSS, and `supervisor run`
    # imports this module (through the CLI) whether or not Telegram is configured.
    from supervisor.alerts.telegram import TelegramChannel
    from supervisor.runtime import tls

    channel = TelegramChannel(token, telegram.api_url, telegram.timeout_s, tls=tls.client)
    try:
        bot = await channel.connect()
    except ChannelError as exc:
        await channel.close()
        refused = isinstance(exc, TokenRejectedError)
        return judge.TelegramFacts(True, token_error=str(exc), refused=refused)
    chats: list[tuple[int, str | None, str]] = []
    sent: list[int] = []
    try:
        for chat_id in telegram.chat_ids:
            try:
                title = await channel.chat(chat_id)
                if send_test:
                    await channel.send(chat_id, _test_message())
                    sent.append(chat_id)
            except ChannelError as exc:
                chats.append((chat_id, str(exc), ""))
            else:
                chats.append((chat_id, None, title))
    finally:
        await channel.close()
    return judge.TelegramFacts(True, bot, chats=tuple(chats), sent=tuple(sent))


def _test_message() -> str:
    alert = Alert(
        key="doctor-test",
        target="supervisor",
        severity=Severity.INFO,
        summary="test message from supervisor doctor --send-test",
        at=time.time(),
    )
    return format_html(alert, socket.gethostname())
