"""Benchmarks for bloghub, run on the real services: ``python -m bench [producer|projector]``.

Each benchmark makes its own topic prefix and database, measures a baseline and the thing
under test in the same process and run, prints a table with the ratio against its goal and
writes the figures to ``artifacts/bench/<name>.json``. Benchmarks are not tests: nothing here
asserts on time, a goal that is missed is reported as BELOW.
"""
