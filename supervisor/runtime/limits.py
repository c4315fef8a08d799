"""The process's limits: its descriptors, and the memory its libraries take at import.

systemd gives a user service 1024 descriptors (soft) unless its unit says otherwise; the
kernel allows raising the soft limit up to the hard one without privileges. Probes,
D-Bus and HTTP share what we have, so we take all we are allowed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
from collections.abc import Iterator

log = logging.getLogger(__name__)
_NR_OPEN_DEFAULT = 1 << 20  # the kernel's default fs.nr_open


def raise_nofile() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit and log it; the (old, new) soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # An unlimited hard limit cannot be a soft limit for files on Linux (nr_open caps it).
    target = hard if hard != resource.RLIM_INFINITY else _NR_OPEN_DEFAULT
    if soft >= target:
        log.info("descriptor limit %d (the hard limit)", soft)
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError) as exc:
        log.warning("descriptor limit %d: cannot raise it to %d: %s", soft, target, exc)
        return soft, soft
    log.info("descriptor limit raised from %d to %d (the hard limit)", soft, target)
    return soft, target


# Helpers of aiohttp that have a pure-Python twin, each switched by its documented variable,
# read once when it is first imported. Their compiled modules cost the daemon 1.5 MB of RSS
# (frozenlist 1.1 MB: aiohttp's signal lists; propcache and yarl 0.4 MB: cached properties
# and URL quoting) and save no CPU we could measure per /health request (docs/BENCHMARKS.md).
# aiohttp's own HTTP parser stays compiled: dropping it costs half again the CPU per request.
PURE_PYTHON = ("FROZENLIST_NO_EXTENSIONS", "PROPCACHE_NO_EXTENSIONS", "YARL_NO_EXTENSIONS")
# aiohttp makes two TLS contexts at import, each loading the CA file OpenSSL is pointed at
# (2.0 MB of RSS together). With it pointed where no file can be (a path under a device)
# they load none; our clients pass runtime/tls.py's context, made with the environment put
# back. A context left without the file still verifies (against the hashed CA directory, or
# refuses): never less checking, only less memory.
NO_CA_FILE = {"SSL_CERT_FILE": "/dev/null/no-ca-file-while-importing"}


def lean_environ() -> dict[str, str]:
    """The variables `lean_imports` sets (for the benchmark's import probe)."""
    return {**dict.fromkeys(PURE_PYTHON, "1"), **NO_CA_FILE}


@contextlib.contextmanager
def lean_imports() -> Iterator[None]:
    """While the daemon's modules are imported, the helpers above load their pure-Python
    code and aiohttp's TLS contexts no CA file; the environment is put back after, so
    nothing started or made later inherits the switches (a helper's variable the user set
    is left as it is; the user's SSL_CERT_FILE is restored)."""
    added = [name for name in PURE_PYTHON if name not in os.environ]
    saved = {name: os.environ.get(name) for name in NO_CA_FILE}
    os.environ.update(dict.fromkeys(added, "1") | NO_CA_FILE)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
