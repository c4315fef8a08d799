"""Message text: escaping, clipping and Telegram's 4,096-unit limit."""

from __future__ import annotations

from supervisor.alerts.text import LIMIT, bounded, clip, fit, units


def test_units_count_utf16_code_units() -> None:
    assert units("abc") == 3
    assert units("🔴") == 2  # outside the BMP: a surrogate pair, as Telegram counts it


def test_clip_never_splits_an_entity() -> None:
    assert clip("a<b", 10) == "a&lt;b"
    cut = clip("<" * 10, 10)
    assert cut == "&lt;&lt;…"
    assert units(cut) <= 10


def test_bounded_counts_what_did_not_fit() -> None:
    items = [f"item {i}" for i in range(100)]
    text = bounded(items, 60, "\n")
    assert units(text) <= 60
    lines = text.splitlines()
    assert lines[-1] == f"… and {100 - (len(lines) - 1)} more"
    assert bounded(["a", "b"], 60, "; ") == "a; b"


def test_fit_leaves_short_html_alone_and_flattens_long_html() -> None:
    assert fit("<b>ok</b>") == "<b>ok</b>"
    long = "<pre>" + "x &amp; y\n" * 1000 + "</pre>"
    flat = fit(long)
    assert units(flat) <= LIMIT
    assert flat.startswith("x &amp; y\n")
    assert "<pre>" not in flat
    assert flat.endswith("…")
