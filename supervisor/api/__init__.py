"""What we report: renderers (pure), Prometheus metrics and the HTTP server (adapters)."""
