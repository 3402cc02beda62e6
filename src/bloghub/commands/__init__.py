"""Command handlers: validate, decide, reserve unique keys, append events; no read-model writes."""
