"""The last word: when the supervisor's own unit fails for good, tell the Telegram chats.

systemd starts `sidecar-supervisor-last-word.service` (a oneshot running `supervisor
last-word`) through `OnFailure=` on the supervisor's unit. That happens only when the unit
enters *failed*: the start limit hit after repeated crashes or watchdog kills, or exit 78 on a
bad config; never for a failure systemd is still restarting. It reads what happened from
systemd and sends one message with the last config that was valid: the daemon keeps a copy of
its config file in its state directory each time it loads one (start-up, once it holds the
state directory) or applies a reload (`config/file.py`), so a broken config does not also
break the last word.
It never touches the daemon's state or its lock.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from supervisor import config
from supervisor.alerts import sending
from supervisor.alerts.outbox import Message, Outbox
from supervisor.alerts.sending import Result, Sender
from supervisor.alerts.text import bounded, escape_html, with_evidence
from supervisor.config import Config, TelegramConfig
from supervisor.config.file import last_valid
from supervisor.errors import (
    EXIT_ALREADY_RUNNING,
    EXIT_CONFIG,
    EXIT_MEMORY_HARD_LIMIT,
    ConfigError,
    TokenRejectedError,
)
from supervisor.model import Clock, SystemClock
from supervisor.redaction import scrub_shapes
from supervisor.runtime import logs, tls
from supervisor.watch.cause import ExitFacts, LastWords
from supervisor.watch.lastwords import LastWordsReader, Limits

log = logging.getLogger(__name__)
UNIT = "sidecar-supervisor.service"
PROPERTIES = (
    "Result",
    "ExecMainCode",
    "ExecMainStatus",
    "NRestarts",
    "StateChangeTimestamp",
    "InvocationID",
)
WITHIN_S = 45.0  # every attempt ends by then: the oneshot's TimeoutStartSec is 60
_RETRY_S = (1.0, 2.0, 4.0, 8.0)  # the outbox's backoff, shorter: the deadline is 45 s, not hours
_TARGETS_BUDGET = 1000  # characters of the message for the list of targets
_EXITED, _KILLED, _DUMPED = "1", "2", "3"  # ExecMainCode: CLD_* from waitid(2)
_STATUS_WORDS = {
    EXIT_CONFIG: "bad config",
    EXIT_MEMORY_HARD_LIMIT: "over its hard memory limit",
    EXIT_ALREADY_RUNNING: "another instance holds the state directory",
}
_RESULT_WORDS = {
    "start-limit-hit": "systemd gave up restarting it (start limit hit)",
    "watchdog": "it stopped answering systemd's watchdog and was killed",
    "timeout": "it timed out starting or stopping",
    "oom-kill": "the kernel killed it for memory",
    "resources": "systemd could not set it up (a missing file, directory or permission)",
    "core-dump": "it crashed (core dump)",
    "signal": "it was killed by a signal",
    "exit-code": "it exited with an error",
    "success": "systemd reports no failure (was this run by hand?)",
}


def unit_properties(unit: str) -> dict[str, str]:
    """What systemd says about `unit`; {} (and a warning) when it cannot be asked.

    `systemctl --user` talks over the manager's private socket, so this works even when the
    session bus is what broke.
    """
    cmd = ["systemctl", "--user", "show", unit, "--property=" + ",".join(PROPERTIES)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("cannot ask systemd about %s: %s", unit, exc)
        return {}
    if done.returncode != 0:
        log.warning("cannot ask systemd about %s: %s", unit, done.stderr.strip())
        return {}
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def last_exit(props: Mapping[str, str]) -> str:
    """How its main process last ended: `status 78 (bad config)`, `killed by SIGKILL`."""
    code, status = props.get("ExecMainCode", ""), props.get("ExecMainStatus", "")
    if not status.isdigit() or code not in (_EXITED, _KILLED, _DUMPED):
        return "unknown"
    number = int(status)
    if code == _EXITED:
        words = _STATUS_WORDS.get(number)
        return f"status {number} ({words})" if words else f"status {number}"
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    return f"killed by {name}" if code == _KILLED else f"dumped core on {name}"


def reason(props: Mapping[str, str]) -> str:
    """What happened, in words, from the unit's Result, exit and restarts."""
    result, restarts = props.get("Result", ""), props.get("NRestarts", "")
    if result == "exit-code" and props.get("ExecMainStatus") == str(EXIT_CONFIG):
        return "its config is invalid (exit 78), so systemd does not restart it"
    if result == "exit-code" and props.get("ExecMainCode") == _EXITED:
        what = f"it exited with {last_exit(props)}"
    else:
        what = _RESULT_WORDS.get(result, f"it failed ({result or 'systemd could not be asked'})")
    # When the start limit stops an automatic restart, systemd keeps the last run's Result
    # (exit-code, signal, watchdog): failed after restarts is how that case shows.
    if result not in ("start-limit-hit", "success") and restarts.isdigit() and int(restarts):
        what += f"; systemd gave up restarting it after {restarts} restarts (start limit)"
    return what


def message(props: Mapping[str, str], host: str, unit: str, targets: Sequence[str]) -> str:
    """The last word (Telegram HTML, everything escaped)."""
    e = escape_html
    name = unit.removesuffix(".service")
    lines = [
        f"🔴 <b>CRITICAL</b> {e(name)} on {e(host)} has stopped for good: {e(reason(props))}",
        f"systemd: result {e(props.get('Result') or 'unknown')}, last exit "
        f"{e(last_exit(props))}, {e(props.get('NRestarts') or '?')} automatic restarts",
    ]
    if targets:  # a long list is cut ("… and 40 more"): the rest of the message matters more
        lines.append(f"not watched now: {bounded(targets, _TARGETS_BUDGET, ', ')}")
    lines.append(f"look: <code>journalctl --user -u {e(name)}</code>")
    lines.append(
        f"start it again: <code>systemctl --user reset-failed {e(name)}; "
        f"systemctl --user start {e(name)}</code>"
    )
    if props.get("StateChangeTimestamp"):
        lines.append(f"<i>failed at {e(props['StateChangeTimestamp'])}</i>")
    return "\n".join(lines)


async def own_lines(unit: str, props: Mapping[str, str], cfg: Config) -> LastWords:
    """The supervisor's own last lines from its last run (journal), scrubbed like any unit's."""
    facts = ExitFacts(unit, props.get("Result", ""), invocation=props.get("InvocationID", ""))
    limits = Limits(lines=cfg.causes.log_lines, width=cfg.causes.log_line_width, timeout_s=5.0)
    return await LastWordsReader(lambda line: scrub_shapes(logs.redacted(line))).read(facts, limits)


async def deliver(telegram: TelegramConfig, token: str, text: str, within_s: float) -> list[int]:
    """Send `text` to every chat, retrying while Telegram is unreachable; the chats missed."""
    # Imported here, as in delivery.py: only a configured Telegram pays for the library.
    from supervisor.alerts.telegram import TelegramChannel

    deadline = asyncio.get_running_loop().time() + within_s
    channel = TelegramChannel(
        token, telegram.api_url, min(telegram.timeout_s, within_s), tls=tls.client
    )
    outbox = Outbox(backoff_s=_RETRY_S)
    clock = SystemClock()
    missed: list[int] = []
    try:
        for chat_id in telegram.chat_ids:
            head = outbox.add(chat_id, text, clock.time())
            if not await _send(channel, outbox, head, clock, deadline):
                missed.append(chat_id)
    finally:
        await channel.close()
    return missed


async def _send(
    channel: Sender, outbox: Outbox, head: Message, clock: Clock, deadline: float
) -> bool:
    """One chat, tried as alerts are (sending.py) until sent, refused or out of time."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            async with asyncio.timeout_at(deadline):
                done = await sending.attempt(channel, outbox, head, clock)
        except TimeoutError:
            log.error("cannot send the last word to chat %d: no answer in time", head.chat_id)
            return False
        except TokenRejectedError as exc:
            log.error("cannot send the last word to chat %d: %s", head.chat_id, exc)
            return False
        if done.result is Result.DELIVERED:
            log.info("sent the last word to chat %d", head.chat_id)
            return True
        if done.result is Result.REFUSED:
            log.error("cannot send the last word to chat %d: %s", head.chat_id, done.error)
            return False
        wait = max(head.next_at - clock.time(), 0.0)
        if loop.time() + wait >= deadline:
            log.error(
                "cannot send the last word to chat %d: %s; giving up", head.chat_id, done.error
            )
            return False
        log.warning(
            "sending the last word to chat %d failed (attempt %d): %s; retrying in %.0f s",
            head.chat_id,
            head.attempts,
            done.error,
            wait,
        )
        await asyncio.sleep(wait)


def run(config_path: Path | None, unit: str = UNIT, within_s: float = WITHIN_S) -> int:
    """`supervisor last-word`: 0 when every chat got the message, else 1 (said in the log)."""
    props = unit_properties(unit)
    log.error("%s has stopped for good: %s", unit, reason(props))
    try:
        cfg, source = last_valid(config_path or config.default_path())
    except ConfigError as exc:
        log.error("cannot send the last word: no valid config: %s", "; ".join(exc.problems))
        return 1
    telegram = cfg.alerts.telegram
    if telegram is None or not cfg.alerts.enabled:
        log.error(
            "cannot send the last word: %s sets no [alerts.telegram] or alerts are off", source
        )
        return 1
    try:
        token = telegram.read_token()
    except OSError as exc:
        log.error(
            "cannot send the last word: cannot read %s: %s", telegram.token_file, exc.strerror
        )
        return 1
    logs.redact(token)
    log.info("sending the last word to %d chat(s) as %s says", len(telegram.chat_ids), source)
    text = message(props, socket.gethostname(), unit, [t.name for t in cfg.targets])
    words = asyncio.run(own_lines(unit, props, cfg))
    text = with_evidence(text, "", words.lines or (f"(no log lines: {words.unavailable})",))
    missed = asyncio.run(deliver(telegram, token, text, within_s))
    if missed:
        log.error("the last word did not reach chat(s) %s", ", ".join(map(str, missed)))
        return 1
    return 0
