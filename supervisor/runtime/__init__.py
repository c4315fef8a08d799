"""The process's own plumbing: sd_notify, journal-friendly logs, the state file."""
