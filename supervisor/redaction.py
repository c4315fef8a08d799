"""Finding secrets in text however a library reshaped them, and replacing them. Pure.

Libraries do not quote our secrets faithfully: python-telegram-bot capitalizes API error
texts (everything after the first letter is lowercased, so `bot123456:AbC` reads
`bot123456:abc`), and HTTP clients put the token into URLs URL-quoted (`123456%3AAbC`).
So a secret is matched without regard to case, in its URL-quoted form too, and a bot
token's secret half (after the colon) is matched on its own.
"""

from __future__ import annotations

import re

MIN_LENGTH = 8  # a shorter "secret" would redact ordinary words


def forms(secret: str) -> set[str]:
    """Every spelling of `secret` worth hiding (empty if it is too short to hide safely)."""
    if len(secret) < MIN_LENGTH:
        return set()
    found = {secret, _quoted(secret)}
    _, colon, tail = secret.partition(":")
    if colon and len(tail) >= MIN_LENGTH:  # a bot token's secret half, quoted apart from its id
        found.add(tail)
    return found


def _quoted(text: str) -> str:
    """Percent-encoded as in a URL (what `urllib.parse.quote(text, safe="")` gives).

    Written out because the core stays clear of urllib, the HTTP client's home.
    """
    return "".join(
        c
        if c.isascii() and (c.isalnum() or c in "-._~")
        else "".join(f"%{b:02X}" for b in c.encode())
        for c in text
    )


class Redactor:
    """Replaces known secrets in any spelling with a placeholder."""

    def __init__(self, placeholder: str = "<secret>") -> None:
        self._placeholder = placeholder
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def add(self, secret: str) -> None:
        """Hide `secret` from now on."""
        new = forms(secret) - self._forms
        if not new:
            return
        self._forms |= new
        # Longest first: the whole token is replaced before its half could be.
        alternatives = sorted(self._forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, alternatives)), re.IGNORECASE)

    def scrub(self, text: str) -> str:
        """`text` with every known secret replaced."""
        if self._pattern is None:
            return text
        return self._pattern.sub(self._placeholder, text)


# Secrets we were never told about (a unit's own output): found by their shape instead.
_BOT_TOKEN = re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{20,}")
_ASSIGNED = re.compile(
    r"(?i)\b([\w.-]*(?:key|token|secret|passw(?:or)?d|pwd|auth|credential)[\w.-]*)"
    r"(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/-]{8,}=*")


def scrub_shapes(text: str, placeholder: str = "<secret>") -> str:
    """`text` with anything shaped like a secret replaced: bot tokens, `key=...`, bearers.

    For text we did not write (a unit's last lines): its secrets were never registered with
    a `Redactor`, so the common shapes are hidden, erring on the side of hiding too much.
    """
    text = _BOT_TOKEN.sub(placeholder, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {placeholder}", text)
    return _ASSIGNED.sub(lambda m: f"{m.group(1)}{m.group(2)}{placeholder}", text)
