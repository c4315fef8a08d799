"""sidecar-supervisor: keeps a small self-hosted trading deployment alive."""

__version__ = "0.2.0"
