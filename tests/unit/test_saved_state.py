"""The state file's shape, checked without pydantic: defaults filled, unknown keys kept, a
value of the wrong type named by its place (the file is then moved aside, never a crash)."""

from __future__ import annotations

from typing import Any

import pytest

from supervisor.app.persist import WrongShapeError, saved_state


def test_a_minimal_file_gets_every_part_with_its_default() -> None:
    assert saved_state({"version": 1}) == {
        "running": False,
        "alerts": {"incidents": [], "silences": {}, "sent": [], "held": []},
        "outbox": {},
        "recovery": {},
        "telegram_offset": None,
        "targets": {},
    }


def test_values_pass_through_and_unknown_keys_stay() -> None:
    raw = {
        "version": 1,
        "running": True,
        "alerts": {"incidents": [{"target": "trader"}], "silences": {"dash": 5}, "later": 1},
        "recovery": {"trader": {"attempts": [1.5, 2], "gave_up_until": 9, "note": "x"}},
        "telegram_offset": 42,
    }
    got = saved_state(raw)
    assert got["running"] is True
    assert got["alerts"]["silences"] == {"dash": 5}  # an int is a float
    assert got["alerts"]["later"] == 1
    assert got["recovery"]["trader"] == {
        "attempts": [1.5, 2],
        "gave_up_until": 9,
        "slow_retry": False,
        "note": "x",
    }
    assert got["telegram_offset"] == 42


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({}, "version"),
        ({"version": True}, "version"),  # a bool is not a number
        ({"version": 1, "running": 1}, "running"),
        ({"version": 1, "alerts": []}, "alerts"),
        ({"version": 1, "alerts": {"sent": ["x"]}}, "alerts.sent.0"),
        ({"version": 1, "alerts": {"silences": {"a": None}}}, "alerts.silences.a"),
        ({"version": 1, "recovery": {"t": {"slow_retry": "yes"}}}, "recovery.t.slow_retry"),
        ({"version": 1, "recovery": {"t": {"gave_up_until": "soon"}}}, "recovery.t.gave_up_until"),
        ({"version": 1, "telegram_offset": 1.5}, "telegram_offset"),
        ({"version": 1, "targets": []}, "targets"),
    ],
)
def test_a_wrong_type_is_named_by_its_place(raw: dict[str, Any], where: str) -> None:
    with pytest.raises(WrongShapeError, match=rf"^{where}: should be "):
        saved_state(raw)
