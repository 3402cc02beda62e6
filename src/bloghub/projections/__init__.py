"""Projectors build every read model from the log; the runner drives them."""
