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
# Supervisor bugs the chaos run found (issue 12), not fixed yet: while only these checks
# fail, the test is an expected failure that shows their problems; any other failing check
# fails it. Delete an entry once its fix lands (the run then passes, or fails loudly).
KNOWN_BUGS = {
    "alerts: none false": (
        "a target whose probes have not run since its process (or the supervisor) started is "
        "judged pass from its unit state alone: a false 'resolved' after a supervisor restart "
        "during an incident, and at every restart attempt of a crash loop"
    ),
    "recovery tried before giving up": (
        "after a slow retry succeeds the recovery policy stays in slow-retry mode: the next "
        "failure within window_s is given up at once, without a restart"
    ),
}


@pytest.mark.timeout(240)
def test_a_short_chaos_run_passes_every_check(sandbox: Sandbox, tmp_path: Path) -> None:
    verdict = run_chaos(sandbox, seed=SEED, short=True, minutes=2, work=tmp_path)
    failed = {c.name: f"{c.detail}; {list(c.problems[:4])}" for c in verdict.checks if not c.ok}
    unknown = {name: why for name, why in failed.items() if name not in KNOWN_BUGS}
    assert not unknown, "\n".join(f"{name}: {why}" for name, why in unknown.items())
    if failed:
        pytest.xfail("; ".join(f"{name} ({KNOWN_BUGS[name]}): {failed[name]}" for name in failed))
