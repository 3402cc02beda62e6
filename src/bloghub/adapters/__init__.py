"""Drivers behind small ports; driver errors are translated here and nowhere else."""
