"""Commands in their own process group, against real processes: levels, env, cap, kill."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from supervisor.config import ExecProbe
from supervisor.model import PerfDatum, Status
from supervisor.probing import probes
from supervisor.probing.process import ExecCheck, minimal_env, run_command
from tests.clock import FakeClock
from tests.polling import until

SECRET = "123456:telegram-token"
OURS = {
    "HOME": "/home/trader",
    "USER": "trader",
    "PATH": "/opt/evil/bin",
    "SUPERVISOR_ALERTS__TELEGRAM__TOKEN": SECRET,
    "AWS_SECRET_ACCESS_KEY": "nope",
}


def sh(script: str, **kw: Any) -> ExecProbe:
    return ExecProbe(type="exec", command=["/bin/sh", "-c", script], **kw)


async def check(spec: ExecProbe, limit: float = 5.0) -> Any:
    return await probes.run("t", "exec", ExecCheck(spec, OURS), limit, FakeClock())


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


async def all_gone(pids: list[int]) -> None:
    await until(
        lambda: not any(alive(p) for p in pids), 5, f"processes {pids} to be gone", step=0.01
    )


async def test_exit_codes_are_levels_and_the_first_line_is_the_reason() -> None:
    for code, level in ((0, Status.PASS), (1, Status.WARN), (2, Status.FAIL), (3, Status.UNKNOWN)):
        r = await check(sh(f"echo 'BALANCE {code} - 80 USDT | balance=80;500;100'; exit {code}"))
        assert (r.status, r.output) == (level, f"BALANCE {code} - 80 USDT")
        assert r.perfdata == (PerfDatum("balance", 80.0, ""),)


async def test_odd_exits_are_unknown_and_stderr_explains_a_silent_plugin() -> None:
    r = await check(sh("echo 'usage: check_x -H host' >&2; exit 64"))
    assert (r.status, r.output) == (Status.UNKNOWN, "usage: check_x -H host (exit 64: unknown)")
    r = await check(sh("exit 2"))
    assert (r.status, r.output) == (Status.FAIL, "exit 2, no output")


async def test_a_program_that_cannot_run_is_unknown_not_a_failure(tmp_path: Path) -> None:
    r = await check(ExecProbe(type="exec", command=[str(tmp_path / "check_nothing")]))
    assert r.status is Status.UNKNOWN
    assert r.output == f"exec: cannot run {tmp_path / 'check_nothing'}: No such file or directory"


async def test_the_environment_is_minimal_and_never_holds_our_secrets(tmp_path: Path) -> None:
    env = minimal_env({"PGHOST": "127.0.0.1"}, OURS)
    done = await run_command(["/usr/bin/env"], env=env, cwd=tmp_path, timeout_s=5, max_bytes=4096)
    got = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert got == {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": "/home/trader",
        "USER": "trader",
        "PGHOST": "127.0.0.1",
    }
    assert SECRET not in done.stdout
    pwd = await run_command(["/bin/pwd"], env=env, cwd=tmp_path, timeout_s=5, max_bytes=4096)
    assert pwd.stdout.strip() == str(tmp_path)


async def test_output_is_capped_but_read_to_the_end(tmp_path: Path) -> None:
    script = "head -c 1000000 /dev/zero | tr '\\0' x; echo; echo done >&2"
    done = await run_command(
        ["/bin/sh", "-c", script], env={}, cwd=tmp_path, timeout_s=10, max_bytes=256
    )
    assert (done.exit_code, len(done.stdout), done.truncated) == (0, 256, True)
    assert done.stderr == "done\n"


async def test_a_hanging_command_is_killed_with_all_its_children(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"sleep 300 & echo $! >> {pids}; (sleep 300; true) & echo $! >> {pids}; "
    script += f"echo $$ >> {pids}; sleep 300"
    loop = asyncio.get_running_loop()
    started = loop.time()
    done = await run_command(
        ["/bin/sh", "-c", script], env={}, cwd=tmp_path, timeout_s=0.5, max_bytes=4096
    )
    assert done.timed_out
    assert loop.time() - started < 3
    found = [int(p) for p in pids.read_text().split()]
    assert len(found) == 3
    await all_gone(found)


async def test_the_probe_timeout_kills_the_group_too(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    spec = sh(f"sleep 300 & echo $! >> {pids}; echo $$ >> {pids}; sleep 300", timeout_s=30)
    r = await check(spec, limit=0.5)  # the probe's hard timeout fires first: a cancellation
    assert (r.status, r.output) == (Status.FAIL, "exec: timeout after 0.5 s")
    await all_gone([int(p) for p in pids.read_text().split()])


async def test_children_left_behind_by_a_finished_check_are_killed(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    r = await check(sh(f"sleep 300 & echo $! > {pids}; echo 'OK - fine'"))
    assert (r.status, r.output) == (Status.PASS, "OK - fine")
    await all_gone([int(pids.read_text())])
