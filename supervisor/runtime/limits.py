"""The process's descriptor limit: raise the soft one to the hard one at start.

systemd gives a user service 1024 descriptors (soft) unless its unit says otherwise; the
kernel allows raising the soft limit up to the hard one without privileges. Probes,
D-Bus and HTTP share what we have, so we take all we are allowed.
"""

from __future__ import annotations

import logging
import resource

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
