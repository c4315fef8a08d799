"""Alerts: the policy, outbox and chat words (pure), Telegram (adapter), delivery (joins them)."""
