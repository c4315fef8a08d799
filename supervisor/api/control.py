"""The control socket: how `supervisor hold|release|holds` reach the daemon on the same box.

A Unix socket at `<state_dir>/control.sock`, mode 0600, in the state directory (0700) that
belongs to one supervisor at a time (its lock): the same `--config` names the same state
directory and so the same daemon, and only the user the supervisor runs as can connect, so
no key is typed or stored. One JSON request per line, one JSON answer per line. The caller's
user is taken from the socket (SO_PEERCRED), never from what it claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pwd
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
FILE_NAME = "control.sock"
MAX_PATH = 107  # sun_path holds 108 bytes with the terminating NUL
_MAX_LINE = 16 * 1024
_TIMEOUT_S = 5.0

Handler = Callable[[dict[str, Any], str], dict[str, Any]]


class ControlServer:
    """Answers control requests with `handle(request, who)`."""

    def __init__(self, path: Path, handle: Handler) -> None:
        self.path = path
        self._handle = handle
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Listen; a socket path that is too long or cannot be bound is logged, not fatal."""
        where = str(self.path)
        if len(where.encode()) > MAX_PATH:
            log.warning("no control socket: %s is longer than %d bytes", where, MAX_PATH)
            return
        # We hold the state directory's lock: a socket file left here is a dead run's.
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        try:
            self._server = await asyncio.start_unix_server(
                self._client, path=where, limit=_MAX_LINE
            )
            os.chmod(where, 0o600)  # the directory (0700) already keeps others out
        except OSError as exc:
            log.warning("no control socket at %s: %s", where, exc.strerror or exc)
            self._server = None

    async def stop(self) -> None:
        """Stop listening and remove the socket file."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(OSError):
                self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_TIMEOUT_S):
                line = await reader.readline()
                answer = self._answer(line, _peer(writer))
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (TimeoutError, OSError, ValueError) as exc:
            log.warning("control socket: request dropped: %s", exc or type(exc).__name__)
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    def _answer(self, line: bytes, who: str) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except ValueError:
            return {"ok": False, "error": "not a JSON request"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "not a JSON object"}
        return self._handle(request, who)


def _peer(writer: asyncio.StreamWriter) -> str:
    """`cli:<user>` of the connecting process (the kernel's word, not the client's)."""
    sock = writer.get_extra_info("socket")
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        return f"cli:{pwd.getpwuid(uid).pw_name}"
    except (OSError, KeyError, AttributeError):
        return "cli"


def request(path: Path, payload: dict[str, Any], timeout_s: float = _TIMEOUT_S) -> dict[str, Any]:
    """Send one request to the daemon's control socket (for the CLI); OSError if unreachable."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(path))
        sock.sendall(json.dumps(payload).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n") and len(data) < 1024 * 1024:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    answer = json.loads(data)
    if not isinstance(answer, dict):
        raise ValueError("the supervisor answered something that is not a JSON object")
    return answer
