"""Detection latency: kill -9 of trader's main process (Restart=no, recovery off) -> fail in
the supervisor's snapshot (`since` in /health) and in the first GET /health that says so.

And what saying why costs the alert: alerts open at the first failed round here, so each
kill's alert is decided while the death's cause and last lines are still being read; its
event in /events says how long it waited for them (`causeWaitS`, bounded at 0.5 s), and when
it was queued, after the fail. Reported, not asserted.
"""

from __future__ import annotations

import json
import signal
import time
from functools import partial
from pathlib import Path
from typing import Any

from devtools.bench.faults import signal_unit
from devtools.bench.processes import tail
from devtools.bench.settings import (
    DETECT_TIMEOUT_S,
    SETTLE_TIMEOUT_S,
    BenchError,
    Settings,
    say,
)
from devtools.bench.stats import parse_time, percentiles
from devtools.bench.watchers import HttpClient, fleet_config, supervisor
from devtools.sandbox import Sandbox


def bench_detection(box: Sandbox, work: Path, s: Settings) -> dict[str, Any]:
    """kill -9 trader (Restart=no, recovery off) -> fail in the snapshot and in GET /health."""
    build = partial(fleet_config, box, recovery=False, extra=ALERT_AT_ONCE)
    snapshot_ms, health_ms = [], []
    waited_ms, alert_ms = [], []
    throttled = 0
    with supervisor(box, work, "detection", build) as sup:
        poll = HttpClient(sup.port)
        for i in range(s.kills):
            box.reset_failed()  # each start counts against the start limit (5 in 10 s)
            box.wait_ready("trader", SETTLE_TIMEOUT_S)
            sup.wait_pass()
            _old, killed, mono = signal_unit(box, "trader", signal.SIGKILL)
            # As fast as it can, no sleep: the first answer saying fail is the figure.
            entry: dict[str, Any] = {"status": "throttled (429)"}
            while True:
                doc = poll.health()
                if doc is None:  # throttled: this answer says nothing, ask again
                    throttled += 1
                else:
                    entry = doc["checks"]["trader"][0]
                    if entry["status"] == "fail":
                        seen = time.time()
                        break
                if time.monotonic() - mono > DETECT_TIMEOUT_S:
                    raise BenchError(
                        f"/health still says {entry['status']} {DETECT_TIMEOUT_S:g} s after "
                        f"kill -9 of the trader:\n{tail(sup.log)}"
                    )
            snapshot_ms.append((parse_time(entry["since"]) - killed) * 1000)
            health_ms.append((seen - killed) * 1000)
            alert = cause_alert(poll, killed, mono)
            waited_ms.append(alert["data"]["causeWaitS"] * 1000)
            alert_ms.append((parse_time(alert["time"]) - parse_time(entry["since"])) * 1000)
            box.systemctl("start", "trader.service")
            if (i + 1) % 5 == 0:
                say(f"  {i + 1}/{s.kills} kills")
        poll.close()
    return {
        "snapshot_ms": percentiles(snapshot_ms),
        "health_ms": percentiles(health_ms),
        "throttled": throttled,  # polls answered 429 while waiting for the fail
        "cause_wait_ms": percentiles(waited_ms),  # the alert's wait for cause and lines
        "alert_ms": percentiles(alert_ms),  # from the fail to the alert queued with them
    }


# Every kill its own alert at the first failed round: no threshold, no flapping, no digest.
ALERT_AT_ONCE = "[alerts]\nfailure_threshold = 1\nflap_count = 1000\nmax_per_hour = 1000\n"


def cause_alert(poll: HttpClient, killed: float, mono: float) -> dict[str, Any]:
    """The trader's failing alert after the kill at `killed` (wall), from /events."""
    path = f"/events?target=trader&kind=alert&since={killed:.6f}"
    while True:
        status, body = poll.get(path)
        if status == 200:
            found = [e for e in json.loads(body)["events"] if "causeWaitS" in e["data"]]
            if found:
                return dict(found[-1])  # newest first: the last is this kill's first alert
        if time.monotonic() - mono > DETECT_TIMEOUT_S:
            raise BenchError("no alert with a cause in /events after kill -9 of the trader")
        time.sleep(0.05)  # the bench, not a test: a gentle poll leaves the read undisturbed
