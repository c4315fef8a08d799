"""The daemon as a real process: sd_notify on a real socket, journal lines, SIGHUP, SIGTERM.

No systemd needed: the bus address points nowhere, which the daemon must survive (it
reports targets unknown and keeps serving).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import get_json
from tests.integration.proc import Proc

CONFIG = """
[http]
port = {port}
[[targets]]
name = "trader"
unit = "trader.service"
"""


@pytest.fixture
def proc(tmp_path: Path) -> Iterator[Proc]:
    p = Proc(tmp_path, CONFIG)
    yield p
    p.close()


def test_ready_status_watchdog_and_stopping(proc: Proc) -> None:
    got = proc.messages_until("READY=1")
    assert got[-1] == "READY=1"
    code, doc = get_json(f"http://127.0.0.1:{proc.port}/health")
    assert code == 200  # bus down: unknown is a warning, not a failure
    assert doc["checks"]["trader"][0]["state"] == "unknown"
    assert "D-Bus" in doc["output"]
    later = proc.messages_until("WATCHDOG=1")
    later += proc.messages_until("WATCHDOG=1")  # passes keep coming at WATCHDOG_USEC/2
    status = [m for m in got + later if m.startswith("STATUS=")]
    assert status
    assert status[0].startswith("STATUS=1 targets: 1 unknown (trader)")
    assert "breaker closed" in status[0]
    proc.proc.send_signal(signal.SIGTERM)
    proc.messages_until("STOPPING=1")
    assert proc.proc.wait(timeout=10) == 0


def test_log_lines_under_journal_stream_carry_priority(proc: Proc) -> None:
    proc.messages_until("READY=1")
    proc.proc.send_signal(signal.SIGTERM)
    proc.proc.wait(timeout=10)
    lines = proc.log.read_text().splitlines()
    assert lines, "no log lines"
    assert all(line[:3] in ("<3>", "<4>", "<6>", "<7>", "<2>") for line in lines), lines
    assert any(line.startswith("<6>supervisor.app.daemon: serving") for line in lines)
    assert any(line.startswith("<4>supervisor.watch.link: D-Bus: ") for line in lines)
    assert not any(line[3:7].isdigit() for line in lines)  # no timestamps: journald adds them


def test_sighup_reload_rejects_a_bad_config_and_applies_a_good_one(proc: Proc) -> None:
    proc.messages_until("READY=1")
    proc.config.write_text("[http\n")  # broken
    proc.proc.send_signal(signal.SIGHUP)
    got = proc.messages_until("READY=1")
    assert any(m.startswith("RELOADING=1") for m in got)
    _, doc = get_json(f"http://127.0.0.1:{proc.port}/health")
    assert list(doc["checks"]) == ["trader"]  # the old config stays in force
    proc.config.write_text(
        CONFIG.format(port=proc.port)
        + '[[targets]]\nname = "dashboard"\nunit = "dashboard.service"\n'
    )
    proc.proc.send_signal(signal.SIGHUP)
    proc.messages_until("READY=1")
    _, doc = get_json(f"http://127.0.0.1:{proc.port}/health")
    assert list(doc["checks"]) == ["trader", "dashboard"]
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(timeout=10) == 0
    log = proc.log.read_text()
    assert "reload rejected, keeping the running config" in log
    assert "reloaded: watching 2 targets" in log


def test_the_running_daemon_uses_the_pure_python_helpers_and_no_pydantic(proc: Proc) -> None:
    """What issue 22's memory figures rest on, in the real process: pydantic is not loaded
    (the config was checked in a child), nor the compiled frozenlist, propcache and yarl;
    aiohttp's compiled parser is (the maps are read right)."""
    proc.messages_until("READY=1")
    maps = Path(f"/proc/{proc.proc.pid}/maps").read_text()
    assert "aiohttp/_http_parser" in maps
    for unloaded in (
        "pydantic_core",
        "frozenlist/_frozenlist",
        "propcache/_helpers_c",
        "yarl/_quo",
    ):
        assert unloaded not in maps, unloaded


def test_sigterm_stops_within_seconds(proc: Proc) -> None:
    proc.messages_until("READY=1")
    started = time.monotonic()
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(timeout=10) == 0
    print(f"\nSIGTERM -> exit: {(time.monotonic() - started) * 1000:.0f} ms")


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = tmp_path / "c.toml"
        cfg.write_text(CONFIG.format(port=port))
        result = subprocess.run(
            [sys.executable, "-m", "supervisor", "run", "--config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
