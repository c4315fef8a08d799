"""The outbox: order per chat, chats independent, backoff, capped retry_after, persistence."""

from __future__ import annotations

import json

from supervisor.alerts.outbox import MAX_WAIT_S, Outbox


def drain(box: Outbox, chat_id: int) -> list[str]:
    texts = []
    while (head := box.head(chat_id)) is not None:
        texts.append(head.text)
        box.sent(head)
    return texts


def test_fifo_and_head_blocks_the_rest_of_its_chat() -> None:
    box = Outbox()
    a = box.add(1, "failing", now=0)
    box.add(1, "resolved", now=1)
    assert box.head(1) is a
    assert box.failed(a, now=10, error="down", retry_after_s=None) == 11.0
    assert box.head(1) is a  # still first: order is kept
    assert box.failed(a, now=11, error="down", retry_after_s=None) == 13.0
    box.sent(a)
    head = box.head(1)
    assert head is not None
    assert head.text == "resolved"


def test_a_throttled_chat_holds_back_only_its_own_messages() -> None:
    box = Outbox()
    stuck = box.add(1, "failing", now=0)
    box.add(2, "failing", now=0)
    box.add(1, "resolved", now=1)
    box.add(2, "resolved", now=1)
    box.failed(stuck, now=1, error="429", retry_after_s=3600)
    assert drain(box, 2) == ["failing", "resolved"]
    assert box.head(1) is stuck
    assert box.chats() == [1]


def test_retry_after_is_honoured() -> None:
    box = Outbox()
    m = box.add(1, "x", now=0)
    assert box.failed(m, now=5, error="429", retry_after_s=17) == 22
    assert m.last_error == "429"


def test_retry_after_is_capped() -> None:
    box = Outbox()
    m = box.add(1, "x", now=0)
    assert box.failed(m, now=5, error="429", retry_after_s=3600) == 5 + MAX_WAIT_S
    assert MAX_WAIT_S == 300


def test_the_wait_is_described_for_health() -> None:
    box = Outbox()
    assert box.describe(now=0) is None
    m = box.add(111, "x", now=0)
    box.add(111, "y", now=0)
    box.add(222, "z", now=0)
    assert box.describe(now=0) is None  # waiting, but nothing failed yet
    box.failed(m, now=100, error="Too Many Requests: retry after 3600", retry_after_s=3600)
    assert box.describe(now=113) == (
        "alerts: Telegram asked us to wait 3600 s (we wait at most 300 s) for chat 111; "
        "next try in 287 s at 00:06:40 UTC; 3 waiting"
    )
    other = box.head(222)
    assert other is not None
    box.failed(other, now=113, error="sendMessage: httpx.ConnectError", retry_after_s=None)
    # The chat that waits longest is the one named.
    described = box.describe(now=113)
    assert described is not None
    assert "for chat 111" in described
    assert box.describe(now=400) is None  # both waits are over


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
    box.add(1, "one again", now=0)
    saved = json.loads(json.dumps(box.export()))
    assert [m["text"] for m in saved["messages"]] == ["one", "two", "one again"]
    after = Outbox()
    after.add(1, "three", now=5)
    after.restore(saved)
    assert drain(after, 1) == ["one", "one again", "three"]
    assert drain(after, 2) == ["two"]
    assert after.add(1, "four", now=6).id > 4


def test_an_outbox_saved_by_the_single_queue_version_restores_per_chat() -> None:
    # Exactly what the outbox wrote before it had one queue per chat.
    saved = {
        "next_id": 4,
        "messages": [
            {"id": 1, "chat_id": 111, "text": "a", "created": 5.0, "attempts": 2,
             "next_at": 50.0, "last_error": "sendMessage: Too Many Requests"},
            {"id": 2, "chat_id": 222, "text": "b", "created": 5.0, "attempts": 0,
             "next_at": 0.0, "last_error": ""},
            {"id": 3, "chat_id": 111, "text": "c", "created": 6.0, "attempts": 0,
             "next_at": 0.0, "last_error": ""},
        ],
    }  # fmt: skip
    box = Outbox()
    box.restore(saved)
    head = box.head(111)
    assert head is not None
    assert (head.text, head.attempts, head.next_at) == ("a", 2, 50.0)
    assert drain(box, 111) == ["a", "c"]
    assert drain(box, 222) == ["b"]
    assert box.add(111, "d", now=7).id == 4


def test_keep_only_drops_the_chats_no_longer_configured() -> None:
    box = Outbox()
    box.add(1, "x", now=0)
    box.add(2, "y", now=0)
    box.add(2, "z", now=0)
    assert box.keep_only([1]) == {2: 2}
    assert box.chats() == [1]
    assert len(box) == 1


def test_bounded_per_chat_drops_that_chats_oldest_and_counts() -> None:
    box = Outbox(limit=2)
    box.add(2, "other", now=0)
    for i in range(3):
        box.add(1, str(i), now=0)
    assert len(box) == 3
    assert box.dropped == 1
    assert drain(box, 1) == ["1", "2"]
    assert drain(box, 2) == ["other"]


def test_restore_skips_what_is_wrongly_shaped() -> None:
    box = Outbox()
    box.restore({"next_id": "seven", "messages": [{"id": "x", "chat_id": 1, "text": "a",
                 "created": 0.0}, {"bogus": 1}, "text", {"id": 2, "chat_id": 1, "text": "b",
                 "created": 0.0}]})  # fmt: skip
    assert drain(box, 1) == ["b"]
    assert box.add(1, "c", now=0).id == 3
