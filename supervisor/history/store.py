"""The history store: one SQLite file in `state_dir` (WAL), written by one thread in batches.

Supervision never waits on it: `add` and `status` only put an item on a bounded queue (a
full queue drops the item and counts it). The writer thread turns what it finds into one
transaction. Any trouble (a full disk, a lock held elsewhere, a corrupt file) makes the store
"unavailable" with the reason in words, said once through `on_state`; a corrupt file is moved
aside and a new one started; every `retry_s` it tries again, so it recovers by itself.
Retention (age, then size) is enforced by the same thread in the background.

Reads (the API, from worker threads) use their own read-only connections, one per thread:
WAL lets them read while the writer writes.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.history import sql
from supervisor.history.events import Event, EventQuery, HistoryUnavailableError
from supervisor.history.uptime import Span

log = logging.getLogger(__name__)

FILE_NAME = "history.sqlite3"
MAX_PENDING = 10_000  # queued items; beyond it new ones are dropped (and counted)
BACKLOG = 1_000  # events kept while unavailable, written when it is back; older ones are lost
_BATCH = 1_000
# sqlite3 result codes that decide what we do (sqlite3.h)
_BUSY, _LOCKED, _CORRUPT, _FULL, _NOTADB = 5, 6, 11, 13, 26
_STOP = object()


@dataclass(frozen=True, slots=True)
class _StatusOp:
    target: str
    status: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class _CloseOp:
    at: float


@dataclass(slots=True)
class _Open:
    """A target's current span, and its row once written."""

    status: str
    start: float
    reason: str
    row: int | None = None


class HistoryStore:
    """Events and status spans in SQLite; the constructor does no I/O (`start` does)."""

    def __init__(
        self,
        path: Path,
        *,
        retention_days: float = 30.0,
        max_mb: float = 50.0,
        retry_s: float = 30.0,
        extend_s: float = 60.0,
        prune_every_s: float = 600.0,
        on_state: Callable[[str | None], None] | None = None,
    ) -> None:
        self.path = path
        self._retention_s = retention_days * 86_400
        self._max_bytes = int(max_mb * 1024 * 1024)
        self._retry_s = retry_s
        self._extend_s = extend_s
        self._prune_every_s = prune_every_s
        self.on_state = on_state or (lambda _why: None)  # called from the writer thread
        self._queue: queue.Queue[object] = queue.Queue(MAX_PENDING)
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._open: dict[str, _Open] = {}  # the writer's view
        self._backlog: deque[Event] = deque()
        self._live: dict[str, tuple[str, float]] = {}  # the loop's view: status, since
        self._local = threading.local()
        self._failed_at: float | None = None  # when it last became unavailable
        self._generation = 0  # bumped when the file is replaced: readers reopen
        self.unavailable: str | None = None
        self.dropped = 0  # items lost to a full queue or an unavailable store
        self.written = 0  # events written

    @property
    def ready(self) -> bool:
        """True while the file is open for writing."""
        return self._conn is not None

    # -- the supervision side: never blocks --------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (it opens or creates the file)."""
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._thread.start()

    def add(self, event: Event) -> None:
        """Queue an event for writing."""
        self._put(event)

    def status(self, target: str, status: str, reason: str, at: float) -> None:
        """A target's status from `at` on (closes its previous span)."""
        self._live[target] = (status, at)
        self._put(_StatusOp(target, status, reason, at))

    def close(self, at: float, timeout_s: float = 5.0) -> None:
        """End every span at `at`, write what is queued, stop the thread (clean stop)."""
        self._put(_CloseOp(at))
        self._put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("history: writer still busy after %.0f s; leaving it", timeout_s)
        self._live.clear()

    def _put(self, item: object) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        retry_at = prune_at = extend_at = 0.0
        while True:
            due = retry_at if self._conn is None else min(extend_at, prune_at)
            items = self._take(max(0.0, due - time.time()))
            now = time.time()
            stop = _STOP in items
            if self._conn is None and now >= retry_at:
                self._connect()
                retry_at = now + self._retry_s
            if self._conn is None:
                self._remember(items)
            else:
                items = [*self._backlog, *items]
                self._backlog.clear()
                try:
                    self._write(items, now)
                    if now >= extend_at or stop:
                        self._extend(now)
                        extend_at = now + self._extend_s
                    if now >= prune_at:
                        self.prune(now)
                        prune_at = now + self._prune_every_s
                except (sqlite3.Error, OSError) as exc:
                    self._failed(exc)
                    self._remember(items)  # the batch was rolled back: keep it
                    retry_at = time.time() + self._retry_s
            if stop:
                self._disconnect()
                return

    def _take(self, wait_s: float) -> list[object]:
        """Block for one item (at most `wait_s`), then take whatever else is queued."""
        try:
            items = [self._queue.get(timeout=wait_s) if wait_s > 0 else self._queue.get_nowait()]
        except queue.Empty:
            return []
        while len(items) < _BATCH:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return items

    def _remember(self, items: list[object]) -> None:
        """While unavailable: the last events and every status are kept for when it is back."""
        for item in items:
            if isinstance(item, Event):
                if len(self._backlog) >= BACKLOG:
                    self._backlog.popleft()
                    self.dropped += 1
                self._backlog.append(item)
            elif isinstance(item, _StatusOp):
                self._open[item.target] = _Open(item.status, item.at, item.reason)
            elif isinstance(item, _CloseOp):
                self._open.clear()

    def _write(self, items: list[object], now: float) -> None:
        conn = self._conn
        assert conn is not None
        events = 0
        with conn:
            for item in items:
                if isinstance(item, Event):
                    conn.execute(
                        "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?)",
                        sql.event_row(item),
                    )
                    events += 1
                elif isinstance(item, _StatusOp):
                    self._switch(conn, item)
                elif isinstance(item, _CloseOp):
                    self._extend_rows(conn, item.at)
                    self._open.clear()
            self._insert_pending(conn, now)
        self.written += events

    def _switch(self, conn: sqlite3.Connection, op: _StatusOp) -> None:
        old = self._open.get(op.target)
        if old is not None and old.row is not None:
            conn.execute("UPDATE spans SET end = ? WHERE id = ?", (op.at, old.row))
        cur = conn.execute(
            "INSERT INTO spans (target, status, start, end, reason) VALUES (?, ?, ?, ?, ?)",
            (op.target, op.status, op.at, op.at, op.reason),
        )
        self._open[op.target] = _Open(op.status, op.at, op.reason, cur.lastrowid)

    def _insert_pending(self, conn: sqlite3.Connection, now: float) -> None:
        """Write spans that have no row yet (kept in memory while the store was away).

        One that began before the trouble starts again now: its old row, if it survived,
        already covers the time up to its last extension, and the gap between is no data.
        """
        for target, span in self._open.items():
            if span.row is None:
                lost = self._failed_at is not None and span.start < self._failed_at
                start = now if lost else span.start
                cur = conn.execute(
                    "INSERT INTO spans (target, status, start, end, reason) VALUES (?, ?, ?, ?, ?)",
                    (target, span.status, start, max(start, now), span.reason),
                )
                span.row = cur.lastrowid

    def _extend(self, now: float) -> None:
        """Move the open spans' ends to now: a crash loses at most `extend_s` of uptime."""
        conn = self._conn
        assert conn is not None
        with conn:
            self._extend_rows(conn, now)

    def _extend_rows(self, conn: sqlite3.Connection, at: float) -> None:
        rows = [(at, s.row) for s in self._open.values() if s.row is not None]
        conn.executemany("UPDATE spans SET end = max(end, ?) WHERE id = ?", rows)

    def _connect(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                _prepare(conn)
            except BaseException:
                conn.close()
                raise
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc)
            return
        conn.isolation_level = "DEFERRED"
        self._conn = conn
        for span in self._open.values():
            span.row = None  # rows of a previous connection may be gone: start anew
        if self.unavailable is not None:
            log.info("history: available again (%s)", self.path)
        self._set_state(None)

    def _failed(self, exc: BaseException) -> None:
        code = getattr(exc, "sqlite_errorcode", None)
        self._disconnect()
        self._failed_at = time.time()
        if code in (_CORRUPT, _NOTADB):
            aside = self._move_aside()
            why = f"database corrupt ({exc}); moved aside to {aside.name}, starting a new one"
        elif code == _FULL or (isinstance(exc, OSError) and exc.errno == 28):
            why = f"disk full ({exc})"
        elif code in (_BUSY, _LOCKED):
            why = f"database locked by another process ({exc})"
        else:
            why = f"cannot use {self.path}: {exc}"
        if self.unavailable is None:
            log.warning("history unavailable: %s; supervision goes on", why)
        self._set_state(why)

    def _set_state(self, why: str | None) -> None:
        if why != self.unavailable:
            self.unavailable = why
            try:
                self.on_state(why)
            except Exception:  # the listener's trouble must not stop the writer
                log.exception("history: state listener failed")

    def _move_aside(self) -> Path:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            try:
                src.rename(Path(f"{aside}{suffix}"))
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("history: cannot move %s aside: %s", src, exc.strerror)
        self._generation += 1
        return aside

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def prune(self, now: float) -> None:
        """Drop what is older than the retention, then the oldest events over the size cap."""
        conn = self._conn
        assert conn is not None
        cutoff = now - self._retention_s
        with conn:
            conn.execute("DELETE FROM events WHERE id < ?", (int(cutoff * 1_000_000),))
            conn.execute("DELETE FROM spans WHERE end < ?", (cutoff,))
        for _round in range(8):
            used = _used_bytes(conn)
            if used <= self._max_bytes:
                break
            (count,) = conn.execute("SELECT count(*) FROM events").fetchone()
            if count == 0:
                break
            # Cut to 90 % of the cap so pruning does not run at every batch.
            drop = max(1, int(count * (1 - 0.9 * self._max_bytes / used)))
            with conn:
                conn.execute(
                    "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT ?)",
                    (drop,),
                )
            log.info(
                "history: over %.1f MB, pruned the %d oldest events", self._max_bytes / 2**20, drop
            )
        # executescript steps it to the end; execute() would free a single page.
        conn.executescript("PRAGMA incremental_vacuum;")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    # -- reads (any thread) ----------------------------------------------------------------

    def events(self, q: EventQuery) -> list[Event]:
        """A page of events, newest first."""
        return sql.events_from(self._read(*sql.events_query(q)))

    def spans(self, target: str, since: float, now: float) -> list[Span]:
        """The target's status spans overlapping [since, now], the current one up to now."""
        return sql.live_spans(self._read(sql.SPANS, (target, since)), self._live.get(target), now)

    def _read(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if self.unavailable is None and not self.ready:
            return []  # the writer has not opened it yet (or has closed it): nothing to read
        try:
            return self._reader().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            self._local.conn = None
            raise HistoryUnavailableError(self.unavailable or str(exc)) from None

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or self._local.generation != self._generation:
            if conn is not None:
                conn.close()
            uri = self.path.resolve().as_uri() + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True, timeout=1.0)
            conn.execute("PRAGMA cache_size = -128")  # KiB: index lookups, a small working set
            self._local.conn, self._local.generation = conn, self._generation
        return conn


def _prepare(conn: sqlite3.Connection) -> None:
    """WAL, small caches, incremental vacuum (so pruning can give space back), the schema."""
    conn.execute("PRAGMA busy_timeout = 1000")
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect only on a new file
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise sqlite3.OperationalError(f"journal_mode is {mode}, not wal")
    conn.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints, never corrupt
    conn.execute("PRAGMA cache_size = -256")  # KiB
    conn.execute("PRAGMA journal_size_limit = 4194304")
    conn.executescript(sql.SCHEMA)
    (check,) = conn.execute("PRAGMA quick_check(1)").fetchone()
    if check != "ok":
        exc = sqlite3.DatabaseError(f"quick_check: {check}")
        exc.sqlite_errorcode = _CORRUPT
        raise exc


def _used_bytes(conn: sqlite3.Connection) -> int:
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    (free,) = conn.execute("PRAGMA freelist_count").fetchone()
    (size,) = conn.execute("PRAGMA page_size").fetchone()
    return int((pages - free) * size)
