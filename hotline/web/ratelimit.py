"""Rate limits for the public (not logged-in) pages, counted in the database.

Every web process behind a load balancer shares the same counts, so the limit
holds for the whole site rather than per process. Each limiter counts uses per
key in fixed windows of ``window`` seconds (table ``rate_limit``) and judges
a request by the sliding-window estimate

    uses in the current window + uses in the previous one × the share of it
    still inside the last ``window`` seconds

so a burst straddling two windows cannot get twice the allowance through.

One ``take()`` is one statement (plus, rarely, the prune below): an upsert
that adds the use to every key and returns each key's new count with its
previous window's count. The count comes back after the increment, so
concurrent requests (tasks or processes) each see a different total and at
most the allowance passes. A refused take gives its uses back (one decrement
per key), so retrying while blocked does not prolong the block, and a request
refused for its address does not spend its phone number's allowance. Between
the two statements the extra use is visible to others: a concurrent request
may then be refused when it would just have fitted, never admitted when it
should not. ``give_back()`` undoes a take after the fact: the look-up form
counts every attempt up front and returns the use when the keys were right,
so only failures count, yet parallel guesses cannot all slip past one check.

Windows are whole seconds on each process's wall clock; hosts are expected
to keep NTP time, and a second of skew is immaterial against minutes-long
windows. Keys are stored as given (an address, a phone number); rows older
than the previous window serve no purpose and are deleted by a take, at most
once a window per process.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import dataclass
from typing import Callable

from tortoise import connections

from hotline.models import RateLimit

KEY_MAX = RateLimit._meta.fields_map["key"].max_length
TABLE = RateLimit._meta.db_table
NAME_RE = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Taken:
    """The uses one successful ``take()`` counted, to give back if the request should not cost any."""

    keys: tuple[str, ...]
    window_start: int


def _placeholder(dialect: str) -> Callable[[int], str]:
    # Numbered on both dialects so one parameter (the window) can be used by every row.
    return (lambda n: f"${n}") if dialect == "postgres" else (lambda n: f"?{n}")


class RateLimiter:
    def __init__(self, name: str, limit: int, window: float, clock: Callable[[], float] = time.time):
        if not NAME_RE.fullmatch(name):
            # The name prefixes the keys and is matched by LIKE when pruning: no wildcards in it.
            raise ValueError(f"limiter name must be lowercase letters: {name!r}")
        self.name, self.limit, self.clock = name, limit, clock
        self.window = max(1, round(window))
        self._pruned_at = -math.inf

    def _key(self, key: str) -> str:
        # Two limiters share the table, so each key carries its limiter's name.
        full = f"{self.name}:{key}"
        if len(full) > KEY_MAX:
            full = f"{self.name}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"
        return full

    async def take(self, *keys: str) -> Taken | None:
        """Count one use of every key unless that puts one of them over the limit; None when refused."""
        now = self.clock()
        start = math.floor(now / self.window) * self.window
        # The share of the previous window still inside the last `window` seconds.
        weight = 1 - (now - start) / self.window
        # Sorted, so concurrent multi-key upserts lock rows in one order and cannot deadlock.
        stored = tuple(sorted({self._key(key) for key in keys}))
        if not stored:
            raise ValueError("take() needs at least one key")
        conn = connections.get("default")
        p = _placeholder(conn.capabilities.dialect)
        await self._prune(conn, p, now, start)
        rows = ", ".join(f"({p(i)}, {p(1)}, 1)" for i in range(3, len(stored) + 3))
        sql = (
            f'INSERT INTO "{TABLE}" ("key", "window_start", "count") VALUES {rows} '
            f'ON CONFLICT ("key", "window_start") DO UPDATE SET "count" = "{TABLE}"."count" + 1 '
            f'RETURNING "key", "count", (SELECT p."count" FROM "{TABLE}" AS p '
            f'WHERE p."key" = "{TABLE}"."key" AND p."window_start" = {p(2)}) AS previous'
        )
        counted = await conn.execute_query_dict(sql, [start, start - self.window, *stored])
        if all(row["count"] + (row["previous"] or 0) * weight <= self.limit for row in counted):
            return Taken(stored, start)
        await self._decrement(conn, p, stored, start)
        return None

    async def give_back(self, taken: Taken) -> None:
        """Undo a take whose request turned out not to count (a look-up that found its case)."""
        conn = connections.get("default")
        await self._decrement(conn, _placeholder(conn.capabilities.dialect), taken.keys, taken.window_start)

    async def _decrement(self, conn, p, stored: tuple[str, ...], start: int) -> None:
        # One row per statement: an UPDATE over several rows could lock them out of
        # the upserts' order and deadlock against one.
        sql = (
            f'UPDATE "{TABLE}" SET "count" = "count" - 1 '
            f'WHERE "key" = {p(1)} AND "window_start" = {p(2)} AND "count" > 0'
        )
        for key in stored:
            await conn.execute_query(sql, [key, start])

    async def _prune(self, conn, p, now: float, start: int) -> None:
        # One-off addresses must not grow the table forever; once a window per process is plenty.
        if now - self._pruned_at < self.window:
            return
        self._pruned_at = now
        # Only this limiter's rows: another may keep longer windows.
        await conn.execute_query(
            f'DELETE FROM "{TABLE}" WHERE "window_start" < {p(1)} AND "key" LIKE {p(2)}',
            [start - self.window, f"{self.name}:%"],
        )
