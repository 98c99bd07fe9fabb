"""Pure weak-to-strong science: backends, heads, methods and metrics. No HTTP, no DB."""
