"""A reader of the history can never blind the supervisor: 10 requests a second of
uncached 1,000-event pages for 30 s while the dashboard hangs. The supervisor runs as a
real process against the sandbox (its own CPU time); the reader is wrk.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from devtools.sandbox import Sandbox
from supervisor.history.events import Event, Kind
from supervisor.history.store import FILE_NAME, HistoryStore
from tests.integration.proc import Proc
from tests.integration.test_flood import (
    HOST_OUT_OF_REACH,
    dashboard,
    figure,
    hang_under_load,
    procs,  # noqa: F401 (the fixture)
    start,
)

pytestmark = pytest.mark.sandbox

EVENTS = 3000
READ_S = 30
HANG_FAIL_S = 15.0  # the bound: the hang is `fail` within 15 s, reader or not

# 10 requests/s on one connection: each asks for a different page of 1,000 events (`before`
# walks down the ids), so no cache can answer it. wrk's delay() paces it; nothing sleeps.
# Lua's numbers are doubles: the 16-digit id is written as its thousands and a 3-digit tail.
READER_LUA = """
local n = 0
request = function()
  n = n + 1
  local path = string.format("/events?limit=1000&since=0&before=%%d%%03d", %d, n %% 1000)
  return wrk.format("GET", path)
end
delay = function() return 100 end
"""


def seed(state: Path) -> int:
    """A history of the last hour with enough events for 1,000-event pages of about 250 KB;
    the id after the newest."""
    first = int((time.time() - 3600) * 1_000_000)
    store = HistoryStore(state / "sidecar-supervisor" / FILE_NAME)
    store.start()
    for i in range(EVENTS):
        store.add(
            Event(
                first + i,
                Kind.RECOVERY,
                f"restarted dashboard.service (attempt {i % 3 + 1}/3) after a failed probe",
                "dashboard",
                {"attempt": i % 3 + 1, "job": f"/org/freedesktop/systemd1/job/{i}"},
            )
        )
    store.close(time.time())
    assert store.written == EVENTS
    return first + EVENTS


def test_a_history_reader_never_pauses_probing(
    sandbox: Sandbox,
    tmp_path: Path,
    procs: list[Proc],  # noqa: F811 (the fixture from test_flood)
) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (scripts/test.sh installs it)")
    newest = seed(tmp_path / "state")
    p = start(procs, tmp_path, sandbox, HOST_OUT_OF_REACH + dashboard(sandbox))
    script = tmp_path / "reader.lua"
    script.write_text(READER_LUA % (newest // 1000 - 1))
    cmd = ["wrk", "-t1", "-c1", f"-d{READ_S}s", "--timeout", "5s", "-s", str(script), p.url]
    reader = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # The reader spends its CPU share within a few seconds and is then refused.
    seen_s, out = hang_under_load(p, sandbox, reader, READ_S, lambda line: "HTTP throttled" in line)
    print(f"\nhang seen after {seen_s:.1f} s while reading the history; wrk:\n{out}")
    assert seen_s < HANG_FAIL_S
    assert not [s for s in p.statuses if "breaker open" in s]
    assert "breaker open" not in p.log_text()
    rate = figure(r"Requests/sec:\s+([\d.]+)", out)
    assert rate > 7, "the reader was too slow to prove anything"
    refused = figure(r"Non-2xx or 3xx responses: (\d+)", out)
    assert refused > 0.5 * rate * READ_S  # most pages refused (429): the reader pays
