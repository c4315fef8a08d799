"""How a refused HTTP connection ends: told why, our end of stream, closed once its request is.

Closing a socket whose request was never read (or arrives after the close) makes the kernel
answer with a reset, and a client that had not read our 503 yet saw "connection reset by
peer", not the reason (hundreds did in a 1,100-connection flood). So the request is read and
dropped first, up to the end of its headers (or the client's EOF, or `LINGER_S`), and only
then is the socket closed: nothing unread, nothing more to come. At most `LINGER_MAX` wait at
once; past that a refusal closes at once, after our end of stream.

Who refuses, and when, is the capped listener's business (`transport.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

# Sent to a refused connection: no parsing, no handler, no task.
FULL = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 26\r\n\r\ntoo many open connections\n"
)
LINGER_S = 1.0  # a refused connection waits this long at most for its client to close
LINGER_MAX = 256  # refused connections waiting at once (the listen backlog)


class Refusals:
    """The refusals of one listener: how many linger now, how many have ended on our side."""

    def __init__(self) -> None:
        self.lingering = 0  # refused connections waiting for their request or their client
        self.ended = 0  # refused connections closed on our side


class Refusal:
    """One refused connection's end (see the module's docstring)."""

    def __init__(self, refusals: Refusals, transport: asyncio.Transport, head: bytes) -> None:
        self._refusals = refusals
        self._transport = transport
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""
        transport.write(FULL)
        if transport.can_write_eof():
            # Our end of stream first: a reset that a close with a request unread makes
            # comes after it, and the client reads why, then the end.
            transport.write_eof()
        if not transport.can_write_eof() or refusals.lingering >= LINGER_MAX:
            transport.close()
            return
        refusals.lingering += 1
        self._timer = asyncio.get_running_loop().call_later(LINGER_S, transport.close)
        self.received(head)

    def received(self, data: bytes) -> None:
        """Dropped: unread bytes would turn the close into a reset."""
        seen, self._tail = self._tail + data, (self._tail + data)[-3:]
        if b"\r\n\r\n" in seen:
            self._transport.close()  # the whole request is read: a close now is a clean FIN

    def ended(self) -> None:
        """The connection is gone."""
        self._refusals.ended += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._refusals.lingering -= 1


class Refused(asyncio.Protocol):
    """A connection over the cap, refused as soon as it is made."""

    def __init__(self, refusals: Refusals, activity: Callable[[], None]) -> None:
        self._refusals = refusals
        self._activity = activity  # every connection and every chunk a client sends
        self._refusal: Refusal | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._activity()
        assert isinstance(transport, asyncio.Transport)
        self._refusal = Refusal(self._refusals, transport, b"")

    def data_received(self, data: bytes) -> None:
        self._activity()
        if self._refusal is not None:
            self._refusal.received(data)

    def eof_received(self) -> bool:
        return False  # the client is done: the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refusal is not None:
            self._refusal.ended()
