"""The few errors that cross module boundaries."""

from __future__ import annotations

# Exit codes (sysexits.h): systemd units use RestartPreventExitStatus=78 so a bad config
# never turns into a restart loop.
EXIT_OK = 0
EXIT_CONFIG = 78
EXIT_MEMORY_HARD_LIMIT = 75  # EX_TEMPFAIL: restart us, we were over our own hard memory limit
EXIT_ALREADY_RUNNING = 73  # EX_CANTCREAT: another instance holds the state directory's lock


class SupervisorError(Exception):
    """Base of our own errors."""


class ConfigError(SupervisorError):
    """The configuration file is missing, unreadable or invalid."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


class AlreadyRunningError(SupervisorError):
    """Another supervisor holds the state directory."""

    def __init__(self, directory: str, pid: str) -> None:
        self.directory = directory
        self.pid = pid
        super().__init__(
            f"another supervisor (PID {pid or 'unknown'}) is running on the state directory "
            f"{directory}: one instance per state directory"
        )


class BusError(SupervisorError):
    """The D-Bus call failed or the bus is gone."""


class BusReplyError(BusError):
    """A D-Bus call answered with an error: its name (`error_name`) says which."""

    def __init__(self, member: str, error_name: str, detail: str) -> None:
        super().__init__(f"{member}: {error_name}: {detail}")
        self.error_name = error_name


class AlreadySubscribedError(BusReplyError):
    """`Subscribe()` to a manager that already counts us (it was re-executed): harmless."""


class ChannelError(SupervisorError):
    """Telegram could not be used."""


class TokenRejectedError(ChannelError):
    """The bot token was rejected."""


class MessageRejectedError(ChannelError):
    """Telegram refused this request for good (bad chat id, bot blocked, bad markup)."""


class ChannelUnavailableError(ChannelError):
    """Telegram cannot be reached or asked us to wait; try again later."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
