"""Backup and restore on real files: secrets left out, a consistent history, refusal while
a supervisor holds the state directory, and words for what was restored."""

from __future__ import annotations

import json
import sqlite3
import tarfile
from pathlib import Path

import pytest

from supervisor import config
from supervisor.errors import AlreadyRunningError
from supervisor.history.events import Event, Kind
from supervisor.history.store import HistoryStore
from supervisor.ops import archive, backup
from supervisor.runtime.state import InstanceLock

NOW = 1_800_000_000.0
TOKEN = "123456:AAE-the-real-bot-token"
KEY = "an-api-key-of-enough-length"
CONFIG = f"""# my config
state_dir = "{{state}}"
[http]
port = 5999
api_key = "{KEY}"   # keep it secret
[alerts.telegram]
token = "{TOKEN}"
chat_ids = [1]
[[targets]]
name = "trader"
unit = "trader.service"
"""


def test_secret_lines_are_left_out_and_the_rest_kept() -> None:
    text, removed = archive.strip_secrets(CONFIG.format(state="/s"), [TOKEN, KEY])
    assert removed == ["http.api_key", "alerts.telegram.token"]
    assert TOKEN not in text
    assert KEY not in text
    assert "# my config" in text
    assert "# api_key = ... (left out of the backup: a secret)" in text
    assert "chat_ids = [1]" in text


def test_a_dotted_secret_key_is_left_out_too() -> None:
    text, removed = archive.strip_secrets(f'[alerts]\ntelegram.token = "{TOKEN}"\n', [TOKEN])
    assert removed == ["alerts.telegram.token"]
    assert TOKEN not in text


def test_a_secret_that_cannot_be_cut_out_by_line_is_refused() -> None:
    inline = f'[alerts]\ntelegram = {{ token = "{TOKEN}", chat_ids = [1] }}\n'
    with pytest.raises(archive.SecretLeftError, match=r"alerts\.telegram\.token"):
        archive.strip_secrets(inline, [TOKEN])


def installation(root: Path) -> tuple[config.Config, bytes]:
    state = root / "state"
    path = root / "config.toml"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(CONFIG.format(state=state))
    cfg, raw = config.load_source(path)
    store = HistoryStore(state / "history.sqlite3")
    store.start()
    for i in range(300):
        store.add(Event(int((NOW + i) * 1e6), Kind.UNIT, f"event {i}", "trader"))
    store.status("trader", "fail", "unit failed", NOW)
    store.close(NOW + 300)
    saved = {
        "version": 1,
        "running": True,
        "alerts": {"incidents": [{"target": "trader"}], "silences": {}},
        "outbox": {"next_id": 3, "messages": [{"id": 1}, {"id": 2}]},
        "targets": {"holds": {"trader": {"until": NOW + 600, "by": "alice"}}, "stopped": {}},
    }
    (state / "state.json").write_text(json.dumps(saved))
    return cfg, raw


def test_backup_then_restore_into_a_fresh_directory(tmp_path: Path) -> None:
    cfg, raw = installation(tmp_path / "old")
    dest = tmp_path / "backup.tar.gz"
    said = backup.backup(cfg, raw, dest, NOW)
    assert any("300 event(s)" in line for line in said)
    assert dest.stat().st_mode & 0o777 == 0o600
    with tarfile.open(dest) as tar:
        names = sorted(tar.getnames())
        blobs = [tar.extractfile(m).read() for m in tar.getmembers()]  # type: ignore[union-attr]
    assert names == sorted(archive.MEMBERS)
    for blob in [*blobs, dest.read_bytes()]:
        assert TOKEN.encode() not in blob
        assert KEY.encode() not in blob

    fresh = tmp_path / "new" / "state"
    new_config = tmp_path / "new" / "config.toml"
    said = backup.restore(fresh, new_config, dest, NOW + 1000)
    assert "300 event(s), 1 status span(s)" in said[1]
    assert "1 incident(s)" in said[2]
    assert "outbox 2 message(s)" in said[2]
    assert "1 hold(s)" in said[2]
    with sqlite3.connect(fresh / "history.sqlite3") as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (300,)
    state = json.loads((fresh / "state.json").read_text())
    before = json.loads((tmp_path / "old" / "state" / "state.json").read_text())
    assert state == {**before, "running": False}  # a restore is not a crash to report
    assert "put back its secrets" in said[3]
    assert TOKEN not in new_config.read_text()


def test_restore_refuses_while_a_supervisor_holds_the_state_directory(tmp_path: Path) -> None:
    cfg, raw = installation(tmp_path / "old")
    dest = tmp_path / "backup.tar.gz"
    backup.backup(cfg, raw, dest, NOW)
    state = tmp_path / "old" / "state"
    before = (state / "state.json").read_bytes()
    running = InstanceLock(state)
    running.acquire()
    try:
        with pytest.raises(AlreadyRunningError):
            backup.restore(state, tmp_path / "old" / "config.toml", dest, NOW)
    finally:
        running.release()
    assert (state / "state.json").read_bytes() == before
    said = backup.restore(state, tmp_path / "old" / "config.toml", dest, NOW + 5)
    assert "moved aside to state.json.before-restore-" in said[2]
    assert (state / f"state.json.before-restore-{int(NOW + 5)}").read_bytes() == before


def test_something_that_is_not_a_backup_changes_nothing(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    with tarfile.open(junk, "w:gz") as tar:
        tar.add(__file__, arcname="../../etc/evil")
    with pytest.raises(backup.BackupError, match="not a supervisor backup"):
        backup.restore(tmp_path / "state", tmp_path / "config.toml", junk, NOW)
    assert not (tmp_path / "state" / "state.json").exists()


def test_a_state_file_of_a_version_without_holds_is_described_without_them() -> None:
    words = archive.state_summary({"version": 1, "outbox": {"messages": [{"id": 1}]}})
    assert words == (
        "0 incident(s), 0 silence(s), outbox 1 message(s), recovery state of 0 target(s)"
    )
