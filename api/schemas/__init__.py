"""Request and response bodies of the HTTP API (separate from the domain's events)."""
