"""The hot ranking: a score per article, a job that keeps the top entries in Redis under a
lock, and the copy of them each API process serves."""
