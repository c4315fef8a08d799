"""Local clients cannot blind or fool the supervisor: an HTTP flood while a unit hangs, and a
connection flood at `ulimit -n 1024`. The supervisor runs as a real process (its own CPU
time, its own descriptors) against the sandbox; the clients are other processes or ours.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devtools.sandbox import Sandbox
from tests.integration.harness import get_json, get_text
from tests.integration.proc import Proc
from tests.polling import until

pytestmark = pytest.mark.sandbox

# Host load belongs to everyone on a shared test machine: its thresholds are put out of
# reach, so only our own budget (left at its default, 1 % of a core) can trip the breaker.
HOST_OUT_OF_REACH = """
[breaker]
trip_cpu_percent = 100
resume_cpu_percent = 99
trip_memory_percent = 100
resume_memory_percent = 99
"""

# About 250 requests/s: 5 keep-alive connections, each waiting 20 ms after every answer,
# alternating /health and /metrics. wrk's delay() paces the load; nothing here sleeps.
FLOOD_LUA = """
local n = 0
request = function()
  n = n + 1
  if n % 2 == 0 then return wrk.format("GET", "/metrics") end
  return wrk.format("GET", "/health")
end
delay = function() return 20 end
"""
FLOOD_S = 30
DETECTION_S = 12.0  # README: 5 s wait + 3 x 2 s timeout + 2 x 0.5 s confirm, the worst case


def dashboard(sandbox: Sandbox, probe: str = "", recovery: str = "enabled = false") -> str:
    url = f"http://127.0.0.1:{sandbox.dashboard_port}/health"
    return (
        '[[targets]]\nname = "dashboard"\nunit = "dashboard.service"\n'
        f'{probe}[[targets.probes]]\ntype = "http"\nurl = "{url}"\n'
        f"[targets.recovery]\n{recovery}\n"
    )


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.close()


def start(
    procs: list[Proc],
    tmp: Path,
    sandbox: Sandbox,
    body: str,
    *,
    nofile: int | None = None,
    nofile_hard: int | None = None,
) -> Proc:
    config = "[http]\nport = {port}\n" + body
    p = Proc(tmp, config, env=sandbox.env(), nofile=nofile, nofile_hard=nofile_hard)
    procs.append(p)
    p.messages_until("READY=1")
    p.status_until(lambda line: "1 pass" in line, 15, "the dashboard to pass")
    return p


def wrk(url: str, tmp: Path) -> subprocess.Popen[str]:
    script = tmp / "flood.lua"
    script.write_text(FLOOD_LUA)
    cmd = ["wrk", "-t1", "-c5", f"-d{FLOOD_S}s", "--timeout", "2s", "-s", str(script), url]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def hang_under_load(
    p: Proc,
    sandbox: Sandbox,
    load: subprocess.Popen[str],
    load_s: float,
    loaded: Callable[[str], bool],
) -> tuple[float, str]:
    """Once STATUS= shows `loaded`, hang the dashboard while `load` runs its full course;
    the seconds until the hang was `fail`, and what the load printed."""
    try:
        p.status_until(loaded, 25, "the load to be felt (HTTP throttled)")
        hung = time.monotonic()
        sandbox.fault("dashboard", "hang")
        p.status_until(lambda line: "fail (dashboard)" in line, 25, "the hung dashboard to fail")
        seen_s = time.monotonic() - hung
        out, _ = load.communicate(timeout=load_s + 15)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    return seen_s, out


def figure(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


def test_http_flood_never_blinds_probing(
    sandbox: Sandbox, tmp_path: Path, procs: list[Proc]
) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (scripts/test.sh installs it)")
    p = start(procs, tmp_path, sandbox, HOST_OUT_OF_REACH + dashboard(sandbox))
    # Serving goes over its share: the answer must be to throttle HTTP (before issue 11: to
    # open the breaker, about 10 s in). Either shows within a few samples.
    seen_s, out = hang_under_load(
        p,
        sandbox,
        wrk(p.url, tmp_path),
        FLOOD_S,
        lambda line: "breaker open" in line or "HTTP throttled" in line,
    )
    print(f"\nhang seen after {seen_s:.1f} s under the flood; wrk:\n{out}")
    assert seen_s < DETECTION_S + 1.5  # + the pass that reports it, on a shared machine
    assert not [s for s in p.statuses if "breaker open" in s]
    assert "breaker open" not in p.log_text()
    rate = figure(r"Requests/sec:\s+([\d.]+)", out)
    assert rate > 150, "the flood was too thin to prove anything"
    assert figure(r"Non-2xx or 3xx responses: (\d+)", out) > 0  # throttled: 429s


HOLDERS = 1100  # more than a process at `ulimit -n 1024` can hold
CAP = 64  # [http] max_connections, the default
FAST_PROBE = "period_s = 1\ntimeout_s = 1\nconfirm_interval_s = 0.2\n"


@dataclass
class Held:
    """What the clients of a connection flood saw, and when."""

    answered: list[tuple[float, float]] = field(default_factory=list)  # 200: (answer, closed)
    refused: int = 0  # 503 "too many open connections", closed at once
    errors: list[str] = field(default_factory=list)  # anything else (none expected)

    def most_at_once(self) -> int:
        """The most answered connections held open at the same moment."""
        edges = sorted([(a, 1) for a, _ in self.answered] + [(c, -1) for _, c in self.answered])
        most = now = 0
        for _t, step in edges:
            now += step
            most = max(most, now)
        return most


async def hold(port: int, held: Held) -> None:
    """One keep-alive connection: a request, its answer, then held until the server closes
    it (idle keep-alive timeout, or at once when it is over the cap)."""
    loop = asyncio.get_running_loop()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        held.errors.append(f"connect: {exc}")
        return
    try:
        writer.write(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        await writer.drain()
        status = await reader.readline()
        answered = loop.time()
        await reader.read()  # until the server closes it
        if status.startswith(b"HTTP/1.1 200"):
            held.answered.append((answered, loop.time()))
        elif status.startswith(b"HTTP/1.1 503"):
            held.refused += 1
        else:
            held.errors.append(f"answer: {status!r}")
    except OSError as exc:
        held.errors.append(f"held: {exc}")
    finally:
        writer.close()


def probe_counts(p: Proc) -> tuple[float, float]:
    _code, text = get_text(p.url + "/metrics")
    labels = r'\{target="dashboard",type="http"\} ([\d.e+]+)'
    return figure("supervisor_probe_runs_total" + labels, text), figure(
        "supervisor_probe_failures_total" + labels, text
    )


async def test_connection_flood_at_1024_descriptors_restarts_nothing(
    sandbox: Sandbox, tmp_path: Path, procs: list[Proc]
) -> None:
    body = dashboard(sandbox, FAST_PROBE, recovery="enabled = true")
    # `ulimit -n 1024` with nothing to raise it to: only the connection cap protects it.
    p = start(procs, tmp_path, sandbox, body, nofile=1024)
    # NRestarts counts systemd's own restarts; ours (RestartUnit) show as a new MainPID.
    before = sandbox.show("dashboard.service", "NRestarts", "MainPID")
    runs, failures = await asyncio.to_thread(probe_counts, p)
    held = Held()
    async with asyncio.timeout(30):
        await asyncio.gather(*(hold(p.port, held) for _ in range(HOLDERS)))
    print(f"\n{len(held.answered)} answered, {held.most_at_once()} at once, {held.refused} 503s")
    assert held.errors == []  # every client connected and got an answer (the test's limit
    assert len(held.answered) + held.refused == HOLDERS  # is 20,000: none of its own errors)
    # The cap was reached. That it is never passed is the server's count, which a client
    # cannot see: the clients see a close late (after the server took the next connection in
    # its slot), so their overlap can read more than the cap on a loaded host (72 in a CI run
    # beside a soak). `tests/unit/test_http_guards.py` counts it on the server itself.
    assert held.most_at_once() >= CAP
    assert held.refused > 0  # ...and the rest were told so
    code, _doc = await asyncio.to_thread(get_json, p.url + "/health")
    assert code == 200  # a fresh client is answered once the flood is over
    await until(lambda: probe_counts(p)[0] > runs + 3, 10, "probes running through the flood")
    assert sandbox.show("dashboard.service", "NRestarts", "MainPID") == before
    assert "restart dashboard" not in p.log_text()
    assert probe_counts(p)[1] == failures, "a probe failed: blamed on the dashboard"
    log = p.log_text()
    assert "descriptor limit 1024 (the hard limit)" in log
    assert "Too many open files" not in log


def test_the_soft_descriptor_limit_is_raised_to_the_hard_one(
    sandbox: Sandbox, tmp_path: Path, procs: list[Proc]
) -> None:
    # LimitNOFILE=1024:8192, say: the soft limit is what a plain user unit gets.
    p = start(procs, tmp_path, sandbox, dashboard(sandbox), nofile=1024, nofile_hard=8192)
    assert "descriptor limit raised from 1024 to 8192 (the hard limit)" in p.log_text()
    limits = Path(f"/proc/{p.proc.pid}/limits").read_text()
    [line] = [row for row in limits.splitlines() if row.startswith("Max open files")]
    assert line.split()[3:5] == ["8192", "8192"]
