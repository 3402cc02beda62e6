"""The HTTP layer: native /v1, RealWorld /api and ops; turns requests into commands and queries."""
