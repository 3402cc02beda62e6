"""The in-process cache tier's rules, message by message."""

from __future__ import annotations

from bloghub.adapters.redis.local_tier import LocalTier


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def tier(entries: int = 100, size: int = 10_000, clock: Clock | None = None) -> LocalTier:
    t = LocalTier(max_entries=entries, max_bytes=size, ttl_s=30.0, clock=clock or Clock())
    t.live = True
    return t


def test_a_change_drops_what_was_built_from_an_older_counter() -> None:
    t = tier()
    assert t.put("article:1", b"v1", {"a:1": 3, "u:9": 1}, t.begin())
    assert t.get("article:1") == b"v1"
    t.changed("u:9", 2)
    assert t.get("article:1") is None


def test_a_late_message_does_not_drop_a_newer_copy() -> None:
    t = tier()
    assert t.put("article:1", b"v2", {"a:1": 5}, t.begin())
    t.changed("a:1", 4)  # the fence of the change this copy already reflects
    assert t.get("article:1") == b"v2"


def test_a_copy_built_across_a_change_is_not_kept() -> None:
    t = tier()
    started = t.begin()
    t.changed("a:1", 4)  # arrives while the body is being built from counter 3
    assert not t.put("article:1", b"old", {"a:1": 3}, started)
    assert t.get("article:1") is None
    assert t.put("article:1", b"new", {"a:1": 4}, started), "read at the new counter"


def test_nothing_is_served_or_kept_while_unsubscribed() -> None:
    t = tier()
    assert t.put("article:1", b"v1", {"a:1": 1}, t.begin())
    started = t.begin()
    t.live = False
    t.clear()
    assert t.get("article:1") is None
    t.live = True
    assert not t.put("article:1", b"v1", {"a:1": 1}, started), "began before the gap"


def test_bounded_by_entries_bytes_and_age() -> None:
    clock = Clock()
    t = tier(entries=2, size=10, clock=clock)
    for name in ("a", "b", "c"):
        t.put(name, b"12", {f"k:{name}": 1}, t.begin())
    assert t.get("a") is None, "least recently used out first"
    assert len(t) == 2
    assert not t.put("big", b"x" * 11, {"k:big": 1}, t.begin())
    t.put("d", b"12345678", {"k:d": 1}, t.begin())
    assert t.get("b") is None, "bytes bound"
    assert t.get("d") == b"12345678"
    clock.now += 31
    assert t.get("d") is None, "expired"
