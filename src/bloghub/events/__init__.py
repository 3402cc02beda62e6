"""The event log: envelope and codec, typed events per family, topics, EventLog."""
