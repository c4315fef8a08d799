"""The control socket over a real Unix socket: 0600, one JSON line each way, the caller named
by the kernel (SO_PEERCRED), and a bad request answered, never fatal."""

from __future__ import annotations

import asyncio
import os
import pwd
import socket
import stat
from pathlib import Path
from typing import Any

from supervisor.api.control import ControlServer, request


async def test_a_request_is_answered_and_the_caller_named_by_the_kernel(tmp_path: Path) -> None:
    seen: list[tuple[dict[str, Any], str]] = []

    def handle(req: dict[str, Any], who: str) -> dict[str, Any]:
        seen.append((req, who))
        return {"ok": True, "echo": req.get("op")}

    server = ControlServer(tmp_path / "control.sock", handle)
    await server.start()
    try:
        assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o600
        answer = await asyncio.to_thread(request, server.path, {"op": "holds", "by": "mallory"})
        assert answer == {"ok": True, "echo": "holds"}
        me = pwd.getpwuid(os.getuid()).pw_name
        assert seen == [({"op": "holds", "by": "mallory"}, f"cli:{me}")]
        raw = await asyncio.to_thread(_raw, server.path, b"not json\n")
        assert b'"ok": false' in raw
    finally:
        await server.stop()
    assert not server.path.exists()


async def test_a_stale_socket_file_is_replaced_and_a_long_path_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    path.write_text("left by a dead run")
    server = ControlServer(path, lambda req, who: {"ok": True})
    await server.start()
    try:
        assert stat.S_ISSOCK(os.stat(path).st_mode)
    finally:
        await server.stop()
    deep = ControlServer(tmp_path / ("x" * 120) / "control.sock", lambda req, who: {"ok": True})
    await deep.start()  # logged, not fatal
    await deep.stop()


def _raw(path: Path, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(data)
        return sock.recv(65536)
