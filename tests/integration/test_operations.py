"""`supervisor doctor`, `backup` and `restore` against an installation in the sandbox.

The commands are run as docs/OPERATIONS.md tells a person to run them: the installed
`supervisor` of the venv install_services.sh made, with the sandbox's user-manager
environment. Telegram is the local fake Bot API.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from devtools.fakes.telegram_api import FakeBotApi
from devtools.net import free_port
from supervisor.ops.host import JOURNAL_SOCKET, LINGER_DIR
from tests.integration.installed import UNIT, Installed, present
from tests.polling import until, until_awaited

pytestmark = pytest.mark.sandbox
CHAT = 777101
API_KEY = "doctor-test-api-key-0123456789"


@pytest.fixture(scope="module")
def installed(installation: Installed) -> Iterator[Installed]:
    """conftest's `installed`, but not started first on the installer's config: each test
    starts it on its own (`run_with`), or needs it stopped. Stopped after the module."""
    present(installation)
    yield installation
    installation.sandbox.systemctl("stop", UNIT, check=False)


@pytest.fixture(scope="module")
def fake_port() -> int:
    """One port for every test's fake Bot API: the healthy config stays the same from test to
    test, so the supervisor running on it is not restarted (see `run_with`)."""
    return free_port()


@pytest.fixture
async def fake(fake_port: int) -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi(port=fake_port) as api:
        yield api


@pytest.fixture
def lingering() -> Iterator[None]:
    """Lingering on, as `loginctl enable-linger` leaves it (logind does not run here: the
    doctor reads the file logind reads at boot). Removed after, if it was not there."""
    made_dir = not LINGER_DIR.exists()
    mark = LINGER_DIR / getpass.getuser()
    made = not mark.exists()
    LINGER_DIR.mkdir(parents=True, exist_ok=True)
    mark.touch()
    yield
    if made:
        mark.unlink()
    if made_dir:
        with contextlib.suppress(OSError):
            LINGER_DIR.rmdir()


def state_dir(inst: Installed) -> Path:
    return inst.sandbox.home / ".local" / "state" / "sidecar-supervisor"


def token_file(inst: Installed, token: str, name: str = "telegram.token") -> Path:
    path = inst.sandbox.home / name
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


def healthy(inst: Installed, fake: FakeBotApi, *, extra: str = "") -> str:
    """The config of a healthy installation: two demo units, Telegram, an API key."""
    return (
        f'state_dir = "{state_dir(inst)}"\n'
        f'[http]\nport = {inst.port}\napi_key = "{API_KEY}"\n'
        f'[alerts.telegram]\ntoken_file = "{token_file(inst, fake.token)}"\n'
        f'chat_ids = [{CHAT}]\napi_url = "{fake.url}"\ncommands = false\ntimeout_s = 2\n'
        '[[targets]]\nname = "trader"\nunit = "trader.service"\n'
        '[[targets]]\nname = "dashboard"\nunit = "dashboard.service"\n' + extra
    )


async def run_with(inst: Installed, text: str) -> None:
    """The installed supervisor running on `text`, answering. Started only when it is not
    running on it already: a start takes about 10 s under the unit's CPUQuota=10%."""
    running = inst.show("ActiveState")["ActiveState"] == "active"
    if not running or not inst.config.is_file() or inst.config.read_text() != text:
        inst.config.write_text(text)
        inst.sandbox.systemctl("reset-failed", UNIT, check=False)
        inst.sandbox.systemctl("restart", UNIT)
    await until(lambda: inst.health() is not None, 30, "the supervisor to answer", step=0.05)


async def command(
    inst: Installed, *args: str, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """The installed `supervisor` with the sandbox's environment (off the loop: the fake
    Bot API answers on it)."""
    argv = [*prefix, str(inst.venv / "bin" / "supervisor"), *args]
    env = {**os.environ, **inst.sandbox.env()}
    return await asyncio.to_thread(
        subprocess.run, argv, env=env, capture_output=True, text=True, timeout=120, check=False
    )


async def doctor(
    inst: Installed, config: Path | None = None, prefix: tuple[str, ...] = ()
) -> tuple[int, dict[str, dict[str, str]]]:
    """Exit code and the checks by name, from `supervisor doctor --json`."""
    done = await command(
        inst, "doctor", "--config", str(config or inst.config), "--json", prefix=prefix
    )
    assert done.stdout, done.stderr
    doc = json.loads(done.stdout)
    assert doc["status"] == ("fail" if done.returncode else doc["status"])
    return done.returncode, {c["name"]: c for c in doc["checks"]}


def problems(
    checks: dict[str, dict[str, str]], allowed: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The checks that are not ok, but for those `allowed`."""
    return {n: c for n, c in checks.items() if c["level"] != "ok" and n not in allowed}


def variant(inst: Installed, text: str, name: str) -> Path:
    path = inst.config.with_name(name)
    path.write_text(text)
    return path


# Without journald (this sandbox has none) the journal check warns, saying why.
NO_JOURNAL = frozenset() if JOURNAL_SOCKET.exists() else frozenset({"journal"})


async def test_doctor_says_all_ok_on_a_healthy_install(
    installed: Installed, fake: FakeBotApi, lingering: None
) -> None:
    await run_with(installed, healthy(installed, fake))
    # Right after a restart our CPU may still be over its budget for a sample or two.
    code, checks = await until_awaited(
        lambda: doctor(installed), 60, "all ok", ok=lambda r: not problems(r[1], NO_JOURNAL)
    )
    assert problems(checks, NO_JOURNAL) == {}
    assert code == 0
    for name in NO_JOURNAL:
        assert checks[name]["level"] == "warn"
        assert "no journald" in checks[name]["detail"]
    expected = {"config", "bus", "linger", "unit trader", "unit dashboard", "unit file", "port"}
    expected |= {"daemon", "state dir", "history", "telegram", f"chat {CHAT}", "budget"}
    assert expected | {"journal", "breaker"} == set(checks)
    assert "ours" in checks["port"]["detail"]
    assert "matches the shipped unit" in checks["unit file"]["detail"]
    assert not fake.calls("sendMessage"), "no message without --send-test"
    assert {c.params.get("chat_id") for c in fake.calls("getChat")} == {CHAT}

    done = await command(installed, "doctor", "--config", str(installed.config), "--send-test")
    assert f"chat {CHAT}" in done.stdout
    assert "test message sent" in done.stdout
    (sent,) = fake.sent
    assert sent["chat_id"] == CHAT
    assert "supervisor doctor --send-test" in sent["text"]


async def test_a_target_whose_unit_does_not_exist(installed: Installed, fake: FakeBotApi) -> None:
    await run_with(installed, healthy(installed, fake))
    ghost = '[[targets]]\nname = "ghost"\nunit = "ghost.service"\n'
    config = variant(installed, healthy(installed, fake, extra=ghost), "ghost.toml")
    code, checks = await doctor(installed, config)
    assert code == 1
    found = checks["unit ghost"]
    assert found["level"] == "fail"
    assert "ghost.service does not exist" in found["detail"]
    assert "systemctl --user daemon-reload" in found["fix"]
    assert checks["unit trader"]["level"] == "ok"


async def test_a_telegram_api_that_refuses_the_token(
    installed: Installed, fake: FakeBotApi
) -> None:
    await run_with(installed, healthy(installed, fake))
    wrong = token_file(installed, "123456789:AAnot-the-token-the-api-knows", "wrong.token")
    text = healthy(installed, fake).replace(str(token_file(installed, fake.token)), str(wrong))
    code, checks = await doctor(installed, variant(installed, text, "wrong-token.toml"))
    assert code == 1
    found = checks["telegram"]
    assert found["level"] == "fail"
    assert "the token is not accepted" in found["detail"]
    assert "token_file" in found["fix"]
    assert "AAnot-the-token" not in json.dumps(checks)


async def test_a_state_dir_that_is_not_writable(installed: Installed, fake: FakeBotApi) -> None:
    """A read-only bind mount, in a mount namespace of the doctor's own: root is refused too
    (EROFS), and the running supervisor outside keeps its writable directory."""
    await run_with(installed, healthy(installed, fake))
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1)")
    where = str(state_dir(installed))
    read_only = (
        "unshare",
        "-m",
        "sh",
        "-c",
        f'mount --bind -o ro "{where}" "{where}" && exec "$@"',
        "-",
    )
    probe = await command(installed, "--version", prefix=read_only)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only bind mount here: {probe.stderr.strip()}")
    code, checks = await doctor(installed, prefix=read_only)
    assert code == 1
    found = checks["state dir"]
    assert found["level"] == "fail"
    assert "not writable: Read-only file system" in found["detail"]
    assert "state_dir" in found["fix"]
    assert checks["daemon"]["level"] == "ok"  # only the directory, as the doctor sees it


# The two that stop it come last but for the backup test, which starts it on a config of its
# own anyway.
async def test_the_port_held_by_another_process(installed: Installed, fake: FakeBotApi) -> None:
    installed.config.write_text(healthy(installed, fake))
    installed.sandbox.systemctl("stop", UNIT)  # left stopped: the next test starts it
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_PORT, str(installed.port)],
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "listening"
            code, checks = await doctor(installed)
            assert code == 1
            found = checks["port"]
            assert found["level"] == "fail"
            assert f"held by pid {holder.pid}" in found["detail"]
            assert "http.port" in found["fix"]
        finally:
            holder.kill()


HOLD_PORT = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
print("listening", flush=True)
s.accept()
"""


async def test_the_daemon_not_running(installed: Installed, fake: FakeBotApi) -> None:
    installed.config.write_text(healthy(installed, fake))
    installed.sandbox.systemctl("stop", UNIT)  # left stopped: the next test starts it
    code, checks = await doctor(installed)
    assert code == 1
    found = checks["daemon"]
    assert found["level"] == "fail"
    assert "not running" in found["detail"]
    assert f"systemctl --user start {UNIT}" in found["fix"]
    assert checks["port"]["level"] == "ok"  # free: nothing else took it


# A target whose exec probe flips every second (status changes, incidents opened and
# resolved: the daemon writes events all the time) and one that stays failing (an incident
# open for good from its first probe on, up to one period after the start). The Bot API is
# down: the alerts wait in the outbox.
FLAPPING = """
[alerts]
failure_threshold = 1
[[targets]]
name = "flapper"
[[targets.probes]]
type = "exec"
command = ["/bin/sh", "-c", "exit $(( $(date +%s) % 2 * 2 ))"]
period_s = 0.5
failure_threshold = 1
[[targets]]
name = "broken"
[[targets.probes]]
type = "exec"
command = ["/bin/sh", "-c", "echo CRITICAL - always; exit 2"]
failure_threshold = 1
"""


class Busy(NamedTuple):
    """What the daemon has written, as the backup test waits for it."""

    events: int
    incidents: list[str]
    undelivered: int

    def ready(self) -> bool:
        # The incident must be the one open for good ("broken"'s): the flapper's opens and
        # closes every second, and a state file written while it was closed and before
        # "broken" first failed held no incident at all: the archive's state had none.
        return self.events >= 20 and "broken:health" in self.incidents and self.undelivered > 0


def events_in(path: Path) -> int:
    uri = path.resolve().as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def saved_state(directory: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((directory / "state.json").read_text()))
    except (OSError, ValueError):
        return {}


async def test_backup_while_it_writes_then_restore_into_a_fresh_state_dir(
    installed: Installed, fake: FakeBotApi, tmp_path: Path
) -> None:
    await fake.down()
    # The token inline this time: it must be left out of the archive.
    text = healthy(installed, fake, extra=FLAPPING).replace(
        f'token_file = "{token_file(installed, fake.token)}"', f'token = "{fake.token}"'
    )
    live = state_dir(installed)
    history = live / "history.sqlite3"
    await run_with(installed, text)

    def busy() -> Busy:
        state = saved_state(live)
        return Busy(
            events_in(history) if history.exists() else 0,
            [i.get("key") for i in state.get("alerts", {}).get("incidents") or []],
            len(state.get("outbox", {}).get("messages") or []),
        )

    await until(
        busy, 60, "events, the lasting incident and undelivered alerts", ok=Busy.ready, step=0.2
    )
    before = events_in(history)
    archive = tmp_path / "sidecar-backup.tar.gz"
    done = await command(installed, "backup", "--config", str(installed.config), str(archive))
    assert done.returncode == 0, done.stderr
    await until(lambda: events_in(history) > before + 5, 30, "more events", step=0.1)

    with tarfile.open(archive) as tar:
        blobs = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    assert set(blobs) == {"manifest.json", "config.toml", "state.json", "history.sqlite3"}
    for blob in [*blobs.values(), archive.read_bytes()]:
        assert fake.token.encode() not in blob
        assert API_KEY.encode() not in blob
    archived = json.loads(blobs["state.json"])

    # Into a running installation: refused, nothing touched.
    refused = await command(installed, "restore", "--config", str(installed.config), str(archive))
    assert refused.returncode == 73
    assert "restore refused" in refused.stderr

    fresh = tmp_path / "fresh"
    config = tmp_path / "fresh.toml"
    config.write_text(text.replace(f'state_dir = "{live}"', f'state_dir = "{fresh}"'))
    done = await command(installed, "restore", "--config", str(config), str(archive))
    assert done.returncode == 0, done.stderr
    restored_events = events_in(fresh / "history.sqlite3")
    assert before <= restored_events < events_in(history)
    with contextlib.closing(sqlite3.connect(fresh / "history.sqlite3")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    state = saved_state(fresh)
    assert state == {**archived, "running": False}
    assert any(i["target"] == "broken" for i in state["alerts"]["incidents"])
    assert state["outbox"]["messages"]
    assert f"history: {restored_events:,} event(s)" in done.stdout
    assert f"outbox {len(state['outbox']['messages'])} message(s)" in done.stdout
    await fake.up()
