"""The state directory cannot be turned against the supervisor (issue 11), shown with real
processes and real files: a second instance, a wrongly shaped state file, a full disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.errors import EXIT_ALREADY_RUNNING
from supervisor.runtime.state import StateStore
from tests.integration.proc import Proc
from tests.integration.test_process import CONFIG


def state_file(tmp: Path) -> Path:
    return tmp / "state" / "sidecar-supervisor" / "state.json"


@pytest.fixture
def first(tmp_path: Path) -> Iterator[Proc]:
    p = Proc(tmp_path, CONFIG)
    p.messages_until("READY=1")
    yield p
    p.close()


def test_a_second_instance_exits_naming_the_directory_and_the_pid(
    first: Proc, tmp_path: Path
) -> None:
    saved = json.loads(state_file(tmp_path).read_text())
    assert saved["running"] is True
    env = {"XDG_STATE_HOME": str(tmp_path / "state"), "PATH": "/usr/bin:/bin"}
    second = subprocess.run(
        [sys.executable, "-m", "supervisor", "run", "--config", str(first.config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert second.returncode == EXIT_ALREADY_RUNNING
    assert str(state_file(tmp_path).parent) in second.stderr
    assert f"PID {first.proc.pid}" in second.stderr
    # The first one is untouched: still running, still marked running (so its next crash
    # is still noticed), still serving.
    assert first.proc.poll() is None
    assert json.loads(state_file(tmp_path).read_text())["running"] is True


@pytest.mark.parametrize(
    "body",
    [
        {"version": 1, "alerts": [1, 2]},
        {"version": 1, "recovery": {"trader": []}},
        {"version": 1, "outbox": "x", "telegram_offset": "7"},
        {"version": 1, "alerts": {"silences": {"trader": "soon"}}},
    ],
)
def test_a_wrongly_shaped_state_file_is_moved_aside_not_fatal(
    tmp_path: Path, body: dict[str, object]
) -> None:
    path = state_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(body))
    p = Proc(tmp_path, CONFIG)
    try:
        p.messages_until("READY=1")
        assert p.proc.poll() is None
        aside = list(path.parent.glob("state.json.corrupt-*"))
        assert len(aside) == 1
        assert json.loads(aside[0].read_text()) == body  # kept for a person to look at
    finally:
        p.close()
    assert "wrong shape" in p.log.read_text()


def test_only_the_last_few_bad_files_are_kept(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    for n in range(6):
        store.path.write_text(f"not json {n}")
        assert store.load() == {}
    assert len(list(tmp_path.glob("state.json.corrupt-*"))) == 3


def test_a_full_disk_never_destroys_the_saved_state(tiny_tmpfs: Path) -> None:
    store = StateStore(tiny_tmpfs)
    good = {"alerts": {"silences": {f"target-{n}": 1.8e9 + n for n in range(600)}}}
    assert store.save(good)  # grown well past one page
    size = store.path.stat().st_size
    assert size > 8192
    # Fill the filesystem, then free exactly one page: a write of the state now fits only
    # in part (os.write returns short), which the old code renamed over the good file.
    filler = tiny_tmpfs / "filler"
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    os.truncate(filler, filler.stat().st_size - 4096)
    bigger = {"alerts": {"silences": {f"target-{n}": 1.9e9 + n for n in range(800)}}}
    assert not store.save(bigger)  # could not be written whole: nothing replaced
    assert not store.healthy
    assert store.load()["alerts"] == good["alerts"]
    assert not list(tiny_tmpfs.glob(".state.json.*.tmp"))  # no half-written leftovers
    filler.unlink()
    assert store.save(bigger)  # space is back: it recovers by itself
    assert store.load()["alerts"] == bigger["alerts"]
