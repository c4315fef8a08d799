"""Persisted state on a real filesystem: round trip, corruption, failed writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from supervisor.runtime.state import StateStore


def test_round_trip_and_private_permissions(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    assert store.load() == {}
    assert store.save({"outbox": [{"id": 1, "text": "hi"}]})
    assert store.load()["outbox"] == [{"id": 1, "text": "hi"}]
    assert (store.path.stat().st_mode & 0o777) == 0o600
    assert not [p for p in store.directory.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("garbage", [b"{not json", b"[1, 2]", b'{"version": 999}', b"\xff\xfe"])
def test_corrupt_file_is_moved_aside_not_fatal(
    tmp_path: Path, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    store = StateStore(tmp_path)
    store.path.write_bytes(garbage)
    assert store.load() == {}
    assert not store.path.exists()
    [aside] = list(tmp_path.glob("state.json.corrupt-*"))
    assert aside.read_bytes() == garbage
    assert "moved aside" in caplog.text


def test_failed_write_keeps_going_and_recovers(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        blocker = tmp_path / "file-not-dir"
        blocker.write_text("x")  # a file where the directory should be: writes fail as root too
        store = StateStore(blocker / "state")
    else:
        store = StateStore(tmp_path / "ro")
        store.directory.mkdir(mode=0o500)
    assert not store.save({"a": 1})
    assert not store.healthy
    store.directory = tmp_path / "ok"
    store.path = store.directory / "state.json"
    assert store.save({"a": 1})
    assert store.healthy
    assert json.loads(store.path.read_text())["a"] == 1
