"""Guarding ourselves: the breaker (pure) and own and host load readings (adapter)."""
