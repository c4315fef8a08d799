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
KNOWN_BUGS: dict[str, str] = {
    "alerts: one alert + one resolved per incident": (
        "an incident whose target is active again while its probes cannot judge the new "
        "process yet (paused, or not run since the restart) stays open: no 'resolved' is "
        "sent by the end of the run"
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
