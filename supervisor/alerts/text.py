"""Telegram message text: HTML escaping and the 4,096-character limit. Pure.

Telegram rejects a message longer than 4,096 characters (counted in UTF-16 code units, after
its HTML is parsed). We count the raw HTML instead, which is never shorter, so a message
that fits here fits there. Text is cut before it is escaped, so a cut never splits a tag or
an entity such as `&amp;`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

LIMIT = 4096  # Telegram's sendMessage text limit
_TAG = re.compile(r"<[^>]*>")
_CUT = "…"


def units(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def escape_html(text: str) -> str:
    """Escape for Telegram's HTML parse mode (quotes need no escaping in text)."""
    return html.escape(text, quote=False)


def clip(raw: str, budget: int) -> str:
    """`raw` escaped, cut (ending in "…") so that it takes at most `budget` units."""
    escaped = escape_html(raw)
    if units(escaped) <= budget:
        return escaped
    out: list[str] = []
    used = units(_CUT)
    for char in raw:  # escaping is per character, so a prefix of raw escapes to a prefix
        piece = escape_html(char)
        used += units(piece)
        if used > budget:
            break
        out.append(piece)
    return "".join(out) + _CUT if budget >= units(_CUT) else ""


def bounded(items: Sequence[str], budget: int, separator: str) -> str:
    """Items escaped and joined while they fit in `budget`, then "… and N more"."""
    out: list[str] = []
    used = 0
    for i, item in enumerate(items):
        piece = escape_html(item)
        rest = len(items) - i - 1
        # Room for this item and, if others follow, for the line that counts them.
        tail = units(separator) + units(_more(rest)) if rest else 0
        cost = (units(separator) if out else 0) + units(piece)
        if used + cost + tail > budget:
            out.append(_more(len(items) - i))
            break
        out.append(piece)
        used += cost
    return separator.join(out)


def _more(n: int) -> str:
    return f"… and {n} more"


def fit(text: str, limit: int = LIMIT) -> str:
    """An HTML message within `limit`: unchanged if it fits, else as plain text, clipped.

    The last line of defence for every message we send: a message that is too long would be
    rejected for good, so it loses its formatting rather than being lost.
    """
    if units(text) <= limit:
        return text
    return clip(html.unescape(_TAG.sub("", text)), limit)


_PRE = "\n<pre></pre>"


def with_evidence(message: str, cause: str, lines: Sequence[str], limit: int = LIMIT) -> str:
    """`message` (HTML) with `cause` ending its first line and `lines` in a `<pre>` block.

    The first line is what a phone's notification shows, so the cause goes there. Lines are
    kept from the newest back while they fit in `limit` (the last words matter most).
    """
    first, newline, rest = message.partition("\n")
    if cause:
        first += f": {clip(cause, 256)}"
    base = first + newline + rest
    room = limit - units(base) - units(_PRE)
    kept: list[str] = []
    for line in reversed(lines):
        piece = escape_html(line)
        cost = units(piece) + (1 if kept else 0)
        if cost > room:
            if not kept and room > 1:  # even the last line alone is too long: cut it
                kept.append(clip(line, room))
            break
        kept.append(piece)
        room -= cost
    if not kept:
        return fit(base, limit)
    return base + "\n<pre>" + "\n".join(reversed(kept)) + "</pre>"
