"""The few errors that cross module boundaries."""

from __future__ import annotations

# Exit codes (sysexits.h): systemd units use RestartPreventExitStatus=78 so a bad config
# never turns into a restart loop.
EXIT_OK = 0
EXIT_CONFIG = 78
EXIT_MEMORY_HARD_LIMIT = 75  # EX_TEMPFAIL: restart us, we were over our own hard memory limit


class SupervisorError(Exception):
    """Base of our own errors."""


class ConfigError(SupervisorError):
    """The configuration file is missing, unreadable or invalid."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


class BusError(SupervisorError):
    """The D-Bus call failed or the bus is gone."""
