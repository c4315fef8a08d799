"""Watching systemd: the typed D-Bus front end (adapter) and the health model (pure)."""
