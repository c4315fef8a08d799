"""A check that meets our own limit (no descriptor left: EMFILE) is unknown, never a failure.

Reproduced for real: a child process lowers its own descriptor limit, uses up every
descriptor, then runs the tcp, http and exec checks once against a listener that works.
Whatever the target does, the check could not ask: that is our trouble, not the target's.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import asyncio, resource, sys
from supervisor.config import ExecProbe, HttpProbe, TcpProbe
from supervisor.probing import probes
from supervisor.runtime import tls
from supervisor.probing.process import ExecCheck

port = int(sys.argv[1])


async def main() -> None:
    session = probes.session_factory()
    http = HttpProbe(type="http", url=f"http://127.0.0.1:{port}/")
    checks = [
        probes.TcpCheck(TcpProbe(type="tcp", port=port)),
        probes.HttpCheck(http, session, tls=tls.client),
        ExecCheck(ExecProbe(type="exec", command=["/bin/true"]), {}),
    ]
    session()  # made before the descriptors run out, as a running daemon has it
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    held = []
    try:
        while True:
            held.append(open("/dev/null"))
    except OSError:
        pass
    outcomes = [await check.check() for check in checks]
    del held[:8]  # room to print
    for check, outcome in zip(checks, outcomes):
        print(check.kind, outcome.status.value, outcome.output, sep="\\t")
    await session().close()


asyncio.run(main())
"""


def test_a_check_out_of_descriptors_is_unknown_not_a_failure() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(port)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    found = {kind: (status, output) for kind, status, output in
             (line.split("\t") for line in done.stdout.splitlines())}  # fmt: skip
    assert set(found) == {"tcp", "http", "exec"}, done.stdout
    for kind, (status, output) in found.items():
        assert status == "unknown", f"{kind}: {status}: {output}"
        assert "Too many open files" in output, f"{kind}: {output}"
