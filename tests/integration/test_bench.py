"""A short run of every section of the benchmark (devtools.bench) against the real sandbox, so
the benchmark cannot rot unnoticed: each section must finish and print its figures. The
figures of so short a run prove nothing about speed; `python -m devtools.bench` measures."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.bench.__main__ import measure
from devtools.bench.report import markdown
from devtools.bench.settings import SECTIONS, Settings
from devtools.sandbox import Sandbox

pytestmark = pytest.mark.sandbox


@pytest.mark.timeout(420)
def test_every_section_of_the_benchmark_runs_and_prints_its_figures(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    r = measure(sandbox, tmp_path, Settings.make_smoke(), set(SECTIONS), seed=7)
    assert "failed" not in r, r["failed"]
    assert r["startup_ready_s"]["n"] == 1
    assert r["idle"]["idle_3_targets"]["rss_mb"]["n"] == 1
    assert r["detection"]["health_ms"]["n"] == 1
    assert r["detection"]["cause_wait_ms"]["n"] == 1  # the alert's wait for its cause
    for scenario, by in r["recovery"].items():
        assert set(by) == {"supervisor", "monit", "systemd"}, scenario
    # Every wrk answer is accounted for: served (200/503 with a body), 429, or other.
    for level in r["load"]["levels"] + r["history"]["latency"]["levels"]:
        assert level["served"] > 0, level
        assert level["served"] + level["throttled"] + level["other"] == level["requests"], level
        assert level["other"] == 0, level
    assert r["history"]["burst"]["max_gap_s"]["n"] == 1
    text = markdown(r)
    for table in ("startup to READY=1", "Detection latency", "Recovery time", "under load",
                  "History: RSS", "Targets:"):  # fmt: skip
        assert table in text
