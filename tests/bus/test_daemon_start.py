"""The whole daemon on a fake systemd: its own start-up never pauses its probes.

Starting, the daemon reads every unit and probes every target at once: its busiest moment,
by design. The breaker's own-CPU rule must not count it (the soak's first pause came 14 s
after a start). Here the budget is as low as the schema allows and the breaker trips on the
first sample over it; neither the host's load (thresholds at 100 %) nor memory (this is
pytest's process, larger than a daemon's) can trip it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from supervisor.config import parse
from tests.bus.test_daemon import running, target
from tests.fakes.dbus_daemon import BusDaemon
from tests.fakes.systemd_bus import FakeSystemd
from tests.polling import until

TIGHT = (
    "[budget]\ncpu_percent = 0.001\nmemory_mb = 100000\nmemory_hard_mb = 100000\n"
    "[breaker]\nsustain_s = 0\nsample_interval_s = 0.2\n"
    "trip_cpu_percent = 100\nresume_cpu_percent = 99\n"
    "trip_memory_percent = 100\nresume_memory_percent = 99\n"
)


async def test_starting_up_never_pauses_the_probes(
    bus: BusDaemon, systemd: FakeSystemd, tmp_path: Path
) -> None:
    text = f'state_dir = "{tmp_path}"\n{TIGHT}[http]\nhost = "127.0.0.1"\nport = 0\n'
    cfg = parse(tomllib.loads(text + target("trader")), env={})
    async with running(bus, cfg) as run:
        await until(lambda: run.inside.load_samples >= 5, 10, "five load samples")
        assert not run.inside.breaker_open, run.daemon.snapshot().notes
