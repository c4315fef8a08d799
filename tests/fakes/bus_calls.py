"""What a fake D-Bus service does with each method call before it runs: it records the call
(for tests to read and wait on) and plays the faults a test asked for (an error, or no answer).

`CallRecorder` is the base of `tests.fakes.systemd_bus.FakeSystemd`; its `_on_call` is the
method-call half of a dbus-fast message handler.
"""

import asyncio
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

from dbus_fast import Message, MessageType
from dbus_fast.errors import DBusError


@dataclass(frozen=True, slots=True)
class Call:
    """One method call as it reached the fake."""

    member: str
    interface: str
    path: str
    args: tuple[Any, ...]
    sender: str


@dataclass(slots=True)
class _Fault:
    error: str | None  # a D-Bus error name, or None: never answer
    text: str
    times: int | None  # None: until clear_faults()


class CallRecorder:
    """The calls a fake service received, and the faults it still has to play."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.called: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._faults: dict[str, deque[_Fault]] = {}
        self._sender = ""  # the sender of the call being dispatched (set by _on_call)

    # -- faults ------------------------------------------------------------------------------

    def fail(self, member: str, error: str, text: str = "", *, times: int | None = 1) -> None:
        """The next `times` calls of `member` (None: all, until clear_faults) get this error."""
        self._faults.setdefault(member, deque()).append(_Fault(error, text or error, times))

    def hang(self, member: str, *, times: int | None = 1) -> None:
        """The next `times` calls of `member` are never answered (the caller times out)."""
        self._faults.setdefault(member, deque()).append(_Fault(None, "", times))

    def clear_faults(self) -> None:
        """Answer every call normally again."""
        self._faults.clear()

    def _take_fault(self, member: str) -> _Fault | None:
        queue = self._faults.get(member)
        if not queue:
            return None
        fault = queue[0]
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                queue.popleft()
        return fault

    # -- calls -------------------------------------------------------------------------------

    def calls_to(self, member: str) -> list[Call]:
        """The calls of one member so far, in order."""
        return [c for c in self.calls if c.member == member]

    async def wait_call(self, member: str, count: int = 1, timeout_s: float = 5.0) -> Call:
        """Wait until `member` has been called `count` times; return that call."""
        async with asyncio.timeout(timeout_s):
            while len(self.calls_to(member)) < count:
                event = self.called[member]
                event.clear()
                await event.wait()
        return self.calls_to(member)[count - 1]

    def _on_call(self, msg: Message) -> bool | None:
        """Record a method call and play its fault, if any (True: handled, never answered)."""
        if msg.message_type is not MessageType.METHOD_CALL:
            return None
        member = msg.member or ""
        self.calls.append(
            Call(member, msg.interface or "", msg.path or "", tuple(msg.body), msg.sender or "")
        )
        self.called[member].set()
        fault = self._take_fault(member)
        if fault is not None:
            if fault.error is None:
                return True  # handled, and no reply will ever come
            raise DBusError(fault.error, fault.text)
        # dbus-fast calls the (synchronous) method right after this handler returns.
        self._sender = msg.sender or ""
        return None
