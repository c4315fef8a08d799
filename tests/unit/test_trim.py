"""When freed memory is given back under budget (`supervisor.guard.trim`)."""

from __future__ import annotations

import gc
import os
import weakref

from supervisor.guard.load import shed_memory
from supervisor.guard.trim import EVERY_S, GROWTH_MB, TrimRule


def test_steady_rss_is_never_trimmed() -> None:
    rule = TrimRule()
    assert not any(rule.due(60.0 + (i % 3) * 0.5, float(i * 2)) for i in range(10_000))


def test_growth_over_the_low_point_is_trimmed_once_then_not_again_within_the_interval() -> None:
    rule = TrimRule()
    assert not rule.due(62.0, 0.0)
    assert not rule.due(61.0, 2.0)  # the low point
    assert not rule.due(61.0 + GROWTH_MB - 0.1, 4.0)
    assert rule.due(61.0 + GROWTH_MB, 6.0)
    # The trim gave little back: still high, but not again until EVERY_S has passed.
    assert not rule.due(63.0 + GROWTH_MB, 8.0)
    assert not rule.due(63.0 + GROWTH_MB, 6.0 + EVERY_S - 1)
    assert rule.due(63.0 + GROWTH_MB, 6.0 + EVERY_S)


def test_the_low_point_after_a_trim_is_where_the_trim_left_rss() -> None:
    rule = TrimRule()
    rule.due(60.0, 0.0)
    assert rule.due(64.0, 2.0)
    assert not rule.due(60.5, 4.0)  # the trim gave it back: the new low
    assert not rule.due(62.0, 2.0 + EVERY_S)  # 1.5 MB over that low
    assert rule.due(62.5, 4.0 + EVERY_S)


def test_a_trim_under_budget_collects_nothing_and_opens_nothing() -> None:
    # The first version ran a full collection in the loop and looked glibc up with
    # `ctypes.util.find_library`, a child process and a pipe on each trim.
    gc.collect()
    gc.disable()  # only an explicit collection may free the cycle below
    try:
        probe = weakref.ref(_Cycle([]))  # a cycle only a collection frees
        descriptors = set(os.listdir("/proc/self/fd"))
        for _ in range(3):
            shed_memory(collect=False)
        assert set(os.listdir("/proc/self/fd")) == descriptors
        assert probe() is not None  # no collection ran
        shed_memory()
        assert probe() is None
    finally:
        gc.enable()


class _Cycle:
    def __init__(self, held: list[object]) -> None:
        self.me = self
        self.held = held
