"""Pure renderers: STATUS= line and the status table."""

from __future__ import annotations

from supervisor import times
from supervisor.api import render
from supervisor.model import ActiveState, UnitState
from supervisor.watch.health import HealthModel, TargetSpec
from tests.clock import FakeClock


def model() -> HealthModel:
    m = HealthModel([TargetSpec(n, f"{n}.service") for n in ("a", "b", "c")], FakeClock())
    for n in ("a", "b"):
        m.apply_unit(
            n,
            UnitState(
                unit=f"{n}.service",
                active_state=ActiveState.ACTIVE,
                sub_state="running",
                main_pid=7,
            ),
        )
    m.apply_unit(
        "c",
        UnitState(
            unit="c.service",
            active_state=ActiveState.FAILED,
            sub_state="failed",
            result="exit-code",
        ),
    )
    return m


def test_status_line_names_the_failing() -> None:
    assert render.status_line(model().snapshot()) == "3 targets: 2 pass, 1 fail (c)"


def test_status_line_includes_notes() -> None:
    m = model()
    m.set_note("breaker", "breaker open: host CPU 95% > 90%")
    assert render.status_line(m.snapshot()).endswith("; breaker open: host CPU 95% > 90%")


def test_table_lists_every_target() -> None:
    text = render.table(render.health_document(model().snapshot()))
    lines = text.splitlines()
    assert lines[0] == "overall: warn"
    assert lines[1].split()[:3] == ["TARGET", "STATUS", "UNIT"]
    assert lines[4].split()[:4] == ["c", "fail", "c.service", "failed/failed"]
    assert lines[4].endswith("failed (failed), result exit-code")


def test_iso_has_milliseconds() -> None:
    assert times.iso(1_800_000_000.1234) == "2027-01-15T08:00:00.123Z"
    assert times.iso(None) is None
