"""Active probes: the probe types and resource readers (adapters) and their schedule (pure)."""
