"""Last lines from a file's end or from journalctl (a stand-in executable), always bounded.

The journal reader is the real one; only the `journalctl` it runs is a small script here,
so a missing, failing or hanging journal is reproduced rather than imagined.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

from supervisor.happenings import Happening
from supervisor.model import ActiveState, UnitState
from supervisor.probing.resources import ProcReader
from supervisor.redaction import scrub_shapes
from supervisor.watch.autopsy import WAIT_S, Autopsies
from supervisor.watch.cause import ExitFacts, Kind
from supervisor.watch.lastwords import LastWordsReader, Limits, journal_matches
from supervisor.watch.systemd import Systemd
from tests.clock import FakeClock

INVOCATION = "0123456789abcdef0123456789abcdef"


def run(invocation: str = "", output_file: str = "", **kw: object) -> ExitFacts:
    """The facts of a run that ended, as the reader gets them."""
    return ExitFacts(
        "trader.service",
        "exit-code",
        invocation=invocation,
        output_file=output_file,
        **kw,  # type: ignore[arg-type]
    )


def script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "journalctl"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


async def test_the_end_of_an_output_file(tmp_path: Path) -> None:
    out = tmp_path / "trader.log"
    out.write_text("".join(f"tick {i}\n" for i in range(100)) + "token=abc123secret\nFATAL gone\n")
    words = await LastWordsReader(scrub_shapes).read(run(output_file=str(out)), Limits(lines=3))
    assert words.lines == ("tick 99", "token=<secret>", "FATAL gone")
    assert words.source == f"file {out}"


async def test_a_huge_file_is_read_only_at_its_end(tmp_path: Path) -> None:
    out = tmp_path / "big.log"
    out.write_text("x" * 1_000_000 + "\nlast line\n")
    words = await LastWordsReader(str).read(run(output_file=str(out)), Limits(lines=5, width=50))
    assert words.lines[-1] == "last line"
    assert all(len(line) <= 50 for line in words.lines)


async def test_the_journal_by_invocation(tmp_path: Path) -> None:
    args = tmp_path / "args"
    tool = script(tmp_path, f'echo "$@" > {args}\necho starting\necho "FATAL lost connection"')
    words = await LastWordsReader(str, journalctl=tool).read(
        run(invocation=INVOCATION), Limits(lines=7)
    )
    assert words.lines == ("starting", "FATAL lost connection")
    assert words.source == "journal"
    called = args.read_text()
    assert f"_SYSTEMD_INVOCATION_ID={INVOCATION}" in called
    assert "--lines=7" in called and "--output=cat" in called


def test_the_journal_is_asked_by_invocation_or_by_the_main_pid_since_it_began() -> None:
    # journald cannot always tag the invocation (a user manager outside user@.service);
    # the stream's trusted _PID since the run began is the same run.
    assert journal_matches(run(invocation=INVOCATION)) == [f"_SYSTEMD_INVOCATION_ID={INVOCATION}"]
    facts = run(invocation=INVOCATION, main_pid=4242, started_usec=1_800_000_000_500_000)
    assert journal_matches(facts) == [
        "--since=@1800000000",
        f"_SYSTEMD_INVOCATION_ID={INVOCATION}",
        "+",
        "_PID=4242",
    ]


async def test_unavailable_logs_say_why_in_one_line(tmp_path: Path) -> None:
    missing = await LastWordsReader(str, journalctl=str(tmp_path / "nope")).read(
        run(invocation=INVOCATION), Limits()
    )
    assert missing.lines == () and "No such file" in missing.unavailable
    failing = script(tmp_path, 'echo "No journal files were found." >&2; exit 1')
    failed = await LastWordsReader(str, journalctl=failing).read(
        run(invocation=INVOCATION), Limits()
    )
    assert failed.unavailable == "journalctl failed: No journal files were found."
    empty = await LastWordsReader(str, journalctl=script(tmp_path, "exit 0")).read(
        run(invocation=INVOCATION), Limits()
    )
    assert empty.unavailable == "nothing in the journal"
    none = await LastWordsReader(str).read(run(), Limits())
    assert "no invocation id" in none.unavailable


async def test_a_hanging_journal_costs_its_deadline_and_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    tool = script(tmp_path, f"echo $$ > {pidfile}\nexec sleep 600")
    began = time.monotonic()
    words = await LastWordsReader(str, journalctl=tool).read(
        run(invocation=INVOCATION), Limits(timeout_s=0.3)
    )
    took = time.monotonic() - began
    assert words.unavailable == "reading the log took over 0.3 s"
    assert took < WAIT_S
    pid = int(pidfile.read_text())
    assert _gone(pid)  # killed and reaped: no journalctl left behind


def _gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


async def test_a_death_is_explained_and_kept(tmp_path: Path) -> None:
    tool = script(tmp_path, 'echo "FATAL lost connection to exchange"')
    heard: list[Happening] = []
    autopsies = Autopsies(
        Systemd("unix:path=/nonexistent", []),
        reader=LastWordsReader(str, journalctl=tool),
        procs=ProcReader(proc=tmp_path, cgroup_root=tmp_path),
        clock=FakeClock(),
        limits=Limits(),
        emit=heard.append,
    )
    autopsies.unit_changed("trader", UnitState("trader.service", active_state=ActiveState.ACTIVE))
    # Result arrives before ActiveState (two PropertiesChanged): one death, not two.
    piece = UnitState(
        "trader.service", active_state=ActiveState.ACTIVE, result="exit-code",
        exit_code=1, exit_status=3,
    )  # fmt: skip
    autopsies.unit_changed("trader", piece)
    failed = replace(piece, active_state=ActiveState.FAILED)
    autopsies.unit_changed("trader", failed)
    autopsies.unit_changed("trader", replace(failed, sub_state="failed"))
    death = await autopsies.wait("trader")
    assert death is not None and heard == [death.happening()]
    assert death.cause.kind is Kind.EXITED
    assert death.cause.words == "exited with status 3"
    # Not connected: no invocation id, so the journal is not asked, and that is said.
    assert "no invocation id" in death.log.unavailable
    assert autopsies.latest("trader") is death


async def test_the_output_file_named_only_in_the_unit_file(tmp_path: Path) -> None:
    """systemd 252 says "append" over D-Bus, never the path: the unit's files say it."""
    out = tmp_path / "out.log"
    out.write_text("FATAL from the file\n")
    unit = tmp_path / "trader.service"
    unit.write_text("[Service]\nExecStart=/bin/true\nStandardOutput=journal\n")
    dropin = tmp_path / "override.conf"
    dropin.write_text(f"[Service]\nStandardOutput=append:{out}\n")
    facts = run(output_kind="append", unit_files=(str(unit), str(dropin)))
    words = await LastWordsReader(str).read(facts, Limits())
    assert (words.lines, words.source) == (("FATAL from the file",), f"file {out}")
    unnamed = run(output_kind="append", unit_files=(str(unit),))
    assert (
        "not named in its unit" in (await LastWordsReader(str).read(unnamed, Limits())).unavailable
    )


def test_oom_kills_from_the_cgroup(tmp_path: Path) -> None:
    v2 = tmp_path / "v2" / "app.slice" / "trader.service"
    v2.mkdir(parents=True)
    (v2 / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n")
    assert (
        ProcReader(proc=tmp_path, cgroup_root=tmp_path / "v2").oom_kills(
            "/app.slice/trader.service"
        )
        == 2
    )
    v1 = tmp_path / "v1" / "memory" / "trader.service"
    v1.mkdir(parents=True)
    (v1 / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    reader = ProcReader(proc=tmp_path, cgroup_root=tmp_path / "v1")
    assert reader.oom_kills("/trader.service") == 1
    assert reader.oom_kills("/gone.service") is None
    assert reader.oom_kills("/") is None
    assert os.sep == "/"


async def test_a_clean_stop_ends_the_run_without_a_death(tmp_path: Path) -> None:
    heard: list[Happening] = []
    autopsies = Autopsies(
        Systemd("unix:path=/nonexistent", []),
        reader=LastWordsReader(str),
        procs=ProcReader(proc=tmp_path, cgroup_root=tmp_path),
        clock=FakeClock(),
        limits=Limits(),
        emit=heard.append,
    )
    active = UnitState("trader.service", active_state=ActiveState.ACTIVE)
    autopsies.unit_changed("trader", active)
    autopsies.unit_changed("trader", replace(active, active_state=ActiveState.INACTIVE))
    # A failed state read afterwards (e.g. re-read after a reconnect) is no death of a run.
    autopsies.unit_changed(
        "trader", replace(active, active_state=ActiveState.FAILED, result="exit-code")
    )
    assert not autopsies.reading("trader") and autopsies.latest("trader") is None
    assert heard == []
