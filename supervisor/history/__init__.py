"""History: the events a person asks about, stored in SQLite, and uptime from status spans."""
