"""The outbox: order, backoff, retry_after, persistence, bounds."""

from __future__ import annotations

import json

from supervisor.alerts.outbox import Outbox


def test_fifo_and_head_blocks_the_rest() -> None:
    box = Outbox()
    a = box.add(1, "failing", now=0)
    box.add(1, "resolved", now=1)
    assert box.head() is a
    assert box.failed(a, now=10, error="down", retry_after_s=None) == 11.0
    assert box.head() is a  # still first: order is kept
    assert box.failed(a, now=11, error="down", retry_after_s=None) == 13.0
    box.sent(a)
    head = box.head()
    assert head is not None
    assert head.text == "resolved"


def test_retry_after_is_honoured() -> None:
    box = Outbox()
    m = box.add(1, "x", now=0)
    assert box.failed(m, now=5, error="429", retry_after_s=17) == 22
    assert m.last_error == "429"


def test_backoff_is_capped() -> None:
    box = Outbox()
    m = box.add(1, "x", now=0)
    for _ in range(20):
        nxt = box.failed(m, now=0, error="down", retry_after_s=None)
    assert nxt == 300


def test_persists_in_order_before_new_messages() -> None:
    box = Outbox()
    box.add(1, "one", now=0)
    box.add(2, "two", now=0)
    saved = json.loads(json.dumps(box.export()))
    after = Outbox()
    after.add(1, "three", now=5)
    after.restore(saved)
    texts = []
    while (head := after.head()) is not None:
        texts.append(head.text)
        after.sent(head)
    assert texts == ["one", "two", "three"]
    assert after.add(1, "four", now=6).id > 3


def test_bounded_drops_oldest_and_counts() -> None:
    box = Outbox(limit=2)
    for i in range(3):
        box.add(1, str(i), now=0)
    assert len(box) == 2
    assert box.dropped == 1
    head = box.head()
    assert head is not None
    assert head.text == "1"
