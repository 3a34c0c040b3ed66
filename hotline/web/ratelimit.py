"""A sliding-window rate limiter for the public (not logged-in) pages.

Kept in memory: ``hotline serve`` is one process, and losing the counts on a
restart only forgives a few minutes of submissions. Several web processes
would each keep their own counts, so the effective limit multiplies by their
number; put a shared limiter (the proxy, or Redis) in front of such a setup.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable


class RateLimiter:
    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self.clock = limit, window, clock
        self._hits: dict[str, deque[float]] = {}
        self._pruned_at = clock()

    def _recent(self, key: str, now: float) -> deque[float]:
        hits = self._hits.get(key)
        if hits is None:
            return deque()
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if not hits:
            del self._hits[key]
        return hits

    def _prune(self, now: float) -> None:
        # Once a window, forget every idle key: one-off addresses must not grow the table forever.
        if now - self._pruned_at < self.window:
            return
        self._pruned_at = now
        for key in list(self._hits):
            self._recent(key, now)

    def blocked(self, *keys: str) -> bool:
        """Whether any of the keys has used up its allowance."""
        now = self.clock()
        return any(len(self._recent(key, now)) >= self.limit for key in keys)

    def hit(self, *keys: str) -> None:
        now = self.clock()
        self._prune(now)
        for key in keys:
            self._recent(key, now)
            self._hits.setdefault(key, deque()).append(now)

    def take(self, *keys: str) -> bool:
        """Count one use of every key unless one of them is used up; False when refused.

        No await between the check and the count, so concurrent requests in
        one event loop cannot both slip under the limit.
        """
        if self.blocked(*keys):
            return False
        self.hit(*keys)
        return True
