"""Development tools, never shipped: the systemd sandbox, the demo fleet, the benchmark."""
