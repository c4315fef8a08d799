"""The short chaos run (devtools.chaos --short) against the real sandbox: about two minutes of
overlapping faults on the real supervisor process, every check of the long run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devtools.chaos.__main__ import run_chaos
from devtools.sandbox import Sandbox

pytestmark = pytest.mark.sandbox

# A fixed seed whose plan has every kind of the short run, so a failure here is repeated with
# `python -m devtools.chaos --short --seed 10` (CHAOS_SEED tries another).
SEED = int(os.environ.get("CHAOS_SEED", "10"))


# Every check is asserted but the two below. "alerts: none false" was excused until the verdict
# judged alerts from ground truth the run keeps itself (the fault log, systemd's ExecMainPID and
# start times, the fake Bot API's messages) instead of the supervisor's own /health: its one
# failure in 10 runs was a correct "resolved" the old check took for false.
#
# Timing and memory targets are measured, not asserted, on a shared 2-core test machine: the
# run reports them and `python -m devtools.chaos` (32 minutes) judges them. One answer of 1,584
# at 115 ms failed a CI run; two minutes of RSS are mostly warm-up (+0.85 MiB in one CI run,
# +2.48 MiB in the next). That every request is answered at all is asserted.
MEASURED = frozenset(
    {"/health within 100 ms while up", "footprint drift (RSS < 2 MiB, descriptors 0)"}
)


@pytest.mark.timeout(240)
def test_a_short_chaos_run_passes_every_check(sandbox: Sandbox, tmp_path: Path) -> None:
    verdict = run_chaos(sandbox, seed=SEED, short=True, minutes=2, work=tmp_path)
    names = {c.name for c in verdict.checks}
    assert names >= MEASURED, sorted(MEASURED - names)  # a renamed check is not excused
    failed = [
        f"{c.name}: {c.detail}; {list(c.problems[:4])}"
        for c in verdict.checks
        if not c.ok and c.name not in MEASURED
    ]
    assert not failed, "\n".join(failed)
