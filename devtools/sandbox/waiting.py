"""Bring a sandbox up, waiting while another checkout's sandbox holds the machine."""

from __future__ import annotations

import time
from collections.abc import Callable

from devtools.sandbox.manager import Sandbox
from devtools.sandbox.procs import SandboxError

_BUSY = "another sandbox is up"


def up_when_free(
    box: Sandbox, wait_s: float, on_wait: Callable[[str], None] = lambda _why: None
) -> None:
    """`box.up()`, retried while another sandbox holds the machine lock, for up to `wait_s`.

    Only one sandbox may run per machine (see the package docstring); other engineers' test
    runs take it for minutes at a time. `on_wait` hears why, once. Raises SandboxUnavailable
    at once where no user manager can run, and the last SandboxError after `wait_s`.
    """
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        try:
            box.up()
            return
        except SandboxError as exc:
            if _BUSY not in str(exc) or time.monotonic() > deadline:
                raise
            if not told:
                on_wait(str(exc))
                told = True
        time.sleep(1.0)  # another process's lock: there is no event to wait on
