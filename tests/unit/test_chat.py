"""Chat command parsing."""

from __future__ import annotations

from supervisor.alerts import chat


def test_parse() -> None:
    assert chat.parse("/status") == chat.Command("status", ())
    assert chat.parse("  /Restart@MyBot dashboard ", "mybot") == chat.Command(
        "restart", ("dashboard",)
    )
    assert chat.parse("/restart@OtherBot dashboard", "mybot") is None
    assert chat.parse("hello") is None
    assert chat.parse("") is None


def test_check_target() -> None:
    targets = ["trader", "dashboard"]
    assert chat.check_target(chat.Command("restart", ("dashboard",)), targets) is None
    assert chat.check_target(chat.Command("restart", ("sshd",)), targets) == (
        "'sshd' is not a configured target (trader, dashboard)"
    )
    assert chat.check_target(chat.Command("restart", ()), targets) == "usage: /restart <target>"
    assert chat.check_target(chat.Command("silence", ("trader",)), targets, 2) == (
        "usage: /silence <target> <minutes>"
    )


def test_minutes() -> None:
    assert chat.minutes("30") == 30
    assert chat.minutes("0") is None
    assert chat.minutes("-5") is None
    assert chat.minutes("lots") is None
    assert chat.minutes("100000") is None
