"""The one TLS client context of the process, made the first time TLS is really used.

aiohttp makes two contexts when it is imported, one of them with the system's whole CA
bundle (2.3 MB of RSS, 0.8 MB the other). The daemon imports aiohttp with no CA file in
reach (`limits.lean_imports`), so those two hold no certificates; every client of ours that
may speak TLS (the Telegram requests, an https probe) passes this context instead, so the
trust it verifies against is exactly the system's default, loaded once, and only when a
Telegram channel or an https probe exists.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import threading

_made: list[ssl.SSLContext] = []
# python-telegram-bot opens its two sessions at once: both ask before either has it, and
# a second context would cost its CA store again (2.3 MB).
_making = threading.Lock()


def client_context() -> ssl.SSLContext:
    """The verifying client context: the system's CA store (what `ssl` finds by default),
    or, where the system has none, certifi's bundle (the one httpx would have used).
    Blocking the first time (it reads the CA store); the same context every time after."""
    with _making:
        if not _made:
            made = ssl.create_default_context(cafile=None if _system_store() else _certifi())
            made.set_alpn_protocols(["http/1.1"])  # as aiohttp's own: it speaks HTTP/1.1 only
            _made.append(made)
    return _made[0]


async def client() -> ssl.SSLContext:
    """`client_context()` without blocking the loop: made in a thread the first time."""
    return _made[0] if _made else await asyncio.to_thread(client_context)


def _system_store() -> bool:
    """Whether OpenSSL finds a CA file or a non-empty CA directory where it looks."""
    paths = ssl.get_default_verify_paths()
    if paths.cafile and os.path.isfile(paths.cafile):
        return True
    return bool(paths.capath and os.path.isdir(paths.capath) and os.listdir(paths.capath))


def _certifi() -> str:
    import certifi  # only here: where the system has a CA store it is not needed

    return str(certifi.where())
