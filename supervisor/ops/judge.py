"""The checks of `supervisor doctor` as pure judgements: facts in, one `Finding` out.

The probing (D-Bus, sockets, files, HTTP, Telegram) is done elsewhere (`ops.host`,
`ops.doctor`); here each fact becomes ok, warn or fail with the command or setting that fixes
it, so every verdict is tested without a machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from supervisor.ops.findings import Finding

UNIT = "sidecar-supervisor.service"
GUIDE = "docs/OPERATIONS.md"
MB = 1024 * 1024
MIN_FREE_BYTES = 16 * MB  # below this the state file and history writes start failing
BREAKER_OFTEN = 3  # trips in a day that mean the thresholds or the budget do not fit
_RESTART = f"systemctl --user restart {UNIT}"
_LOGS = f"journalctl --user -u {UNIT} -e"


def config_valid(path: str, targets: int) -> Finding:
    """The config loaded and validated."""
    return Finding.ok("config", f"{path}: valid, {targets} target(s)")


def config_invalid(path: str, problems: Sequence[str]) -> Finding:
    """The config did not load; the checks that need it are skipped."""
    return Finding.fail(
        "config",
        f"{path}: {'; '.join(problems)} (the checks that need the config were skipped)",
        f"edit {path} until `supervisor check-config --config {path}` says OK",
    )


def bus(address: str, error: str | None) -> Finding:
    """The user manager answers on the session bus."""
    if error is None:
        return Finding.ok("bus", f"the systemd user manager answers on {address}")
    return Finding.fail(
        "bus",
        f"no systemd user manager on {address}: {error}",
        "log in through a real session (ssh or console, not `su`) so systemd starts your user "
        "manager and XDG_RUNTIME_DIR=/run/user/$(id -u) is set",
    )


def linger(user: str, loginctl: str | None, linger_file: bool) -> Finding:
    """Lingering keeps the user manager (and so the supervisor) running after logout.

    `loginctl` is logind's answer (`yes`/`no`), None when logind cannot be asked; then the
    file that `loginctl enable-linger` writes is what logind will read at boot.
    """
    on = loginctl == "yes" if loginctl in ("yes", "no") else linger_file
    source = "loginctl" if loginctl in ("yes", "no") else f"/var/lib/systemd/linger/{user}"
    if on:
        return Finding.ok("linger", f"lingering is on for {user} ({source})")
    return Finding.warn(
        "linger",
        f"lingering is off for {user} ({source}): the supervisor stops when you log out",
        f"sudo loginctl enable-linger {user}",
    )


@dataclass(frozen=True, slots=True)
class UnitFacts:
    """What systemd says about one target's unit (load_state "" when it could not be read)."""

    target: str
    unit: str
    load_state: str
    active_state: str = ""
    error: str = ""


def target_unit(facts: UnitFacts) -> Finding:
    """Every target's unit exists and is loaded."""
    name = f"unit {facts.target}"
    if facts.error:
        return Finding.fail(name, f"{facts.unit}: cannot ask systemd: {facts.error}", "see `bus`")
    if facts.load_state == "loaded":
        return Finding.ok(name, f"{facts.unit} is loaded ({facts.active_state})")
    if facts.load_state == "not-found":
        return Finding.fail(
            name,
            f"{facts.unit} does not exist (systemd: not-found)",
            f"install it in ~/.config/systemd/user/{facts.unit} and run "
            "`systemctl --user daemon-reload`, or correct the target's `unit` in the config",
        )
    return Finding.fail(
        name,
        f"{facts.unit} is {facts.load_state} (not loaded)",
        f"`systemctl --user status {facts.unit}` says why; fix the unit file, then "
        "`systemctl --user daemon-reload`",
    )


def port(address: str, free: bool, holders: Sequence[tuple[int, str]], ours: int | None) -> Finding:
    """The HTTP port is free, or held by the running supervisor (`ours`: its PID)."""
    if free:
        return Finding.ok("port", f"{address} is free")
    if ours is not None and any(pid == ours for pid, _ in holders):
        return Finding.ok("port", f"{address} is ours (pid {ours})")
    who = "; ".join(desc for _, desc in holders) or "a process this user cannot see"
    return Finding.fail(
        "port",
        f"{address} is held by {who}, not the supervisor",
        "stop that process, or set another `http.port` in the config",
    )


def daemon(pid: int | None, health: str | None, error: str | None) -> Finding:
    """The daemon runs (holds the state directory's lock) and answers /health."""
    if pid is None:
        return Finding.fail(
            "daemon",
            "not running (nothing holds the state directory's lock)",
            f"systemctl --user start {UNIT}; if it stops again: {_LOGS}",
        )
    if error is not None:
        return Finding.fail(
            "daemon",
            f"running (pid {pid}) but /health does not answer: {error}",
            f"{_LOGS}; then {_RESTART}",
        )
    return Finding.ok("daemon", f"running (pid {pid}), /health says {health}")


@dataclass(frozen=True, slots=True)
class DirFacts:
    """The state directory as found (owner None when it does not exist)."""

    path: str
    owner: int | None
    uid: int  # ours
    write_error: str | None
    free_bytes: int | None
    need_bytes: int  # what the history may grow to, plus room


def state_dir(facts: DirFacts) -> Finding:
    """The state directory is ours, writable, with free space."""
    path = facts.path
    if facts.owner is not None and facts.owner != facts.uid:
        return Finding.fail(
            "state dir",
            f"{path} belongs to uid {facts.owner}, not to us (uid {facts.uid})",
            f"chown -R $(id -un): {path}, or set `state_dir` to a directory of yours",
        )
    if facts.write_error is not None:
        return Finding.fail(
            "state dir",
            f"{path} is not writable: {facts.write_error}",
            f"make {path} writable for $(id -un) (a read-only mount? `findmnt -T {path}`), "
            "or set `state_dir` to a writable directory",
        )
    free = facts.free_bytes
    if free is not None and free < MIN_FREE_BYTES:
        return Finding.fail(
            "state dir",
            f"{path}: only {free / MB:.1f} MB free",
            f"free space on `df -h {path}`'s filesystem, or lower `history.max_mb`",
        )
    if free is not None and free < facts.need_bytes:
        return Finding.warn(
            "state dir",
            f"{path}: {free / MB:.0f} MB free, less than the history may need "
            f"({facts.need_bytes / MB:.0f} MB)",
            "free space there, or lower `history.max_mb`",
        )
    where = "will be created" if facts.owner is None else "ours and writable"
    shown = "" if free is None else f", {free / MB:,.0f} MB free"
    return Finding.ok("state dir", f"{path}: {where}{shown}")


def history(
    enabled: bool, path: str, *, exists: bool, error: str | None, events: int, size: int
) -> Finding:
    """The history file opens and passes SQLite's quick check."""
    if not enabled:
        return Finding.ok("history", "off (`history.enabled = false`)")
    if error is not None:
        return Finding.fail(
            "history",
            f"{path} does not open: {error}",
            f"stop the supervisor, move {path} aside and start it again (it starts a new one)",
        )
    if not exists:
        return Finding.ok("history", f"{path} not created yet (the daemon creates it)")
    return Finding.ok("history", f"{path}: {events:,} events, {size / MB:.1f} MB")


@dataclass(frozen=True, slots=True)
class TelegramFacts:
    """getMe's and each getChat's outcome (error None: it worked)."""

    configured: bool
    bot: str = ""
    token_error: str | None = None
    refused: bool = True  # the token was refused (False: the API could not be reached)
    chats: tuple[tuple[int, str | None, str], ...] = ()  # (chat id, error, title)
    sent: tuple[int, ...] = ()  # chats a test message went to (--send-test)


def telegram(facts: TelegramFacts) -> list[Finding]:
    """The token is accepted and every chat reachable; one finding for the token, one per chat."""
    if not facts.configured:
        return [
            Finding.warn(
                "telegram",
                "no [alerts.telegram]: alerts are only logged, nobody is told",
                "add [alerts.telegram] with token_file and chat_ids (see the README)",
            )
        ]
    if facts.token_error is not None and not facts.refused:
        return [
            Finding.fail(
                "telegram",
                f"the Bot API does not answer: {facts.token_error}",
                "check the network and `alerts.telegram.api_url`, then `supervisor alert-test`",
            )
        ]
    if facts.token_error is not None:
        return [
            Finding.fail(
                "telegram",
                f"the token is not accepted: {facts.token_error}",
                "put the token @BotFather gave you in `alerts.telegram.token_file` (chmod 600), "
                "then `supervisor alert-test`",
            )
        ]
    found = [Finding.ok("telegram", f"the token is accepted (bot @{facts.bot})")]
    for chat, error, title in facts.chats:
        name = f"chat {chat}"
        if error is not None:
            found.append(
                Finding.fail(
                    name,
                    f"not reachable: {error}",
                    f"send /start to @{facts.bot} from that chat (or add the bot to the group), "
                    "and check `alerts.telegram.chat_ids`",
                )
            )
        else:
            sent = "; test message sent" if chat in facts.sent else ""
            found.append(Finding.ok(name, f"reachable ({title or 'no title'}){sent}"))
    return found


def unit_file(installed: str | None, template: str | None, differences: Sequence[str]) -> Finding:
    """The installed unit file is the shipped one (paths filled in)."""
    if installed is None:
        return Finding.warn(
            "unit file",
            f"{UNIT} is not installed (fine for a foreground `supervisor run`)",
            "./install_services.sh",
        )
    if template is None:
        return Finding.warn(
            "unit file",
            f"{installed}: the shipped template was not found to compare with",
            "run doctor from the checkout's venv, or reinstall with ./install_services.sh",
        )
    if differences:
        shown = "; ".join(differences[:3]) + (" ..." if len(differences) > 3 else "")
        return Finding.warn(
            "unit file",
            f"{installed} differs from the shipped unit: {shown}",
            "./install_services.sh (it rewrites the unit); put your own settings in a drop-in: "
            f"systemctl --user edit {UNIT}",
        )
    return Finding.ok("unit file", f"{installed} matches the shipped unit")


def journal(journald: bool, last: str | None, error: str | None) -> Finding:
    """Our lines reach the journal."""
    if not journald:
        return Finding.warn(
            "journal",
            "no journald on this machine (/run/systemd/journal/socket missing): "
            "the supervisor's log lines are not kept",
            "run systemd-journald (Debian: the systemd package; it runs wherever systemd is PID 1)",
        )
    if error is not None:
        return Finding.warn("journal", f"journalctl failed: {error}", _LOGS)
    if not last:
        return Finding.warn(
            "journal",
            f"no lines from {UNIT} in your journal",
            f"{_LOGS}; for a user journal: `Storage=persistent` in /etc/systemd/journald.conf",
        )
    return Finding.ok("journal", f"has our lines; the last: {last[:120]}")


def budget(about: Mapping[str, object] | None, error: str | None) -> Finding:
    """Our own CPU and memory against the budget (from /history's `supervisor`)."""
    if about is None:
        return Finding.warn(
            "budget", f"cannot read our usage: {error or 'no answer'}", "see `daemon`"
        )
    cpu, rss = _number(about.get("cpuPercent")), _number(about.get("rssBytes"))
    limits = about.get("budget")
    limits = limits if isinstance(limits, Mapping) else {}
    cpu_max, mem_max = _number(limits.get("cpuPercent")), _number(limits.get("memoryMb"))
    shown = f"CPU {cpu:.2f} % of {cpu_max:g} %, memory {rss / MB:.0f} MB of {mem_max:g} MB"
    if cpu > cpu_max or rss / MB > mem_max:
        return Finding.warn(
            "budget",
            f"over budget: {shown}",
            "fewer targets or longer `period_s`; or raise `budget.cpu_percent` / "
            "`budget.memory_mb` (see docs/OPERATIONS.md, high CPU or memory)",
        )
    return Finding.ok("budget", shown)


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    """A breaker event from the history."""

    at: float
    open: bool
    summary: str


def breaker(events: Sequence[BreakerEvent], now: float, known: bool = True) -> Finding:
    """Why the breaker last opened and how often (events newest first)."""
    if not known:
        return Finding.ok("breaker", "no history to tell")
    opened = [e for e in events if e.open]
    if not opened:
        return Finding.ok("breaker", "never opened in the history kept")
    day = sum(1 for e in opened if now - e.at <= 86_400)
    week = sum(1 for e in opened if now - e.at <= 7 * 86_400)
    last = opened[0]
    ago = _ago(now - last.at)
    state = "open now" if events[0].open else "closed now"
    detail = f"opened {day}x in 24 h, {week}x in 7 d; last {ago} ago: {last.summary} ({state})"
    if day >= BREAKER_OFTEN:
        return Finding.warn(
            "breaker",
            detail,
            "see docs/OPERATIONS.md, 'the breaker trips again and again': raise "
            "`breaker.trip_*` or `budget.*`, or find what loads the host",
        )
    return Finding.ok("breaker", detail)


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"
