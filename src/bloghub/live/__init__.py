"""Live notifications over WebSocket: each API process's sockets, fed over Redis pub/sub."""
