"""The public pages' rate limits, counted in the database every web process shares.

The database lives for the whole session, so each test gives its limiter a
name of its own (and its keys random parts): no test sees another's counts.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import string
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from hotline.models import RateLimit
from hotline.web.ratelimit import RateLimiter
from tests.hotline.web.test_citizen import complaint, new_client, submit

REPO = Path(__file__).resolve().parents[3]
WINDOW = 600
T0 = 1_800_000_000  # a window boundary: 600 divides it


def limiter_name() -> str:
    return "t" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(12))


class Clock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def limiter(limit: int, clock: Clock | None = None) -> RateLimiter:
    return RateLimiter(limiter_name(), limit, WINDOW, clock=clock or Clock())


async def counts(lim: RateLimiter) -> dict[tuple[str, int], int]:
    rows = await RateLimit.filter(key__startswith=f"{lim.name}:").values_list("key", "window_start", "count")
    return {(key.removeprefix(f"{lim.name}:"), start): count for key, start, count in rows}


# ---- one process ------------------------------------------------------------------------


async def test_takes_pass_up_to_the_limit_and_are_stored_per_key_and_window(app):
    lim = limiter(2)
    assert await lim.take("a") and await lim.take("a", "b")
    assert await lim.take("a") is None
    assert await counts(lim) == {("a", T0): 2, ("b", T0): 1}


async def test_a_refused_take_uses_nothing_up_on_any_of_its_keys(app):
    # Otherwise an address over its limit could use up anyone's phone number by naming it.
    lim = limiter(2)
    assert await lim.take("ip") and await lim.take("ip", "phone")
    assert await lim.take("phone", "ip") is None
    assert await counts(lim) == {("ip", T0): 2, ("phone", T0): 1}
    assert await lim.take("phone")


async def test_a_key_named_twice_in_one_take_counts_once(app):
    lim = limiter(1)
    assert await lim.take("a", "a")
    assert await counts(lim) == {("a", T0): 1}


async def test_given_back_uses_no_longer_count(app):
    lim = limiter(1)
    taken = await lim.take("a")
    await lim.give_back(taken)
    assert await counts(lim) == {("a", T0): 0}
    assert await lim.take("a")


async def test_an_overlong_key_is_stored_as_its_digest_and_still_limited(app):
    lim = limiter(1)
    key = "ip:" + "f" * 500
    assert await lim.take(key)
    assert await lim.take(key) is None
    [(stored, _)] = (await counts(lim)).keys()
    assert stored.startswith("sha256:") and len(f"{lim.name}:{stored}") <= 160


def test_a_limiter_name_may_hold_no_like_wildcards():
    with pytest.raises(ValueError):
        RateLimiter("sub_mit", 1, WINDOW)


async def test_a_take_without_keys_is_a_mistake_not_a_free_pass(app):
    with pytest.raises(ValueError):
        await limiter(1).take()


# ---- windows ----------------------------------------------------------------------------


async def test_uses_fade_out_over_the_next_window_and_are_gone_after_it(app):
    clock = Clock()
    lim = limiter(2, clock)
    assert await lim.take("a") and await lim.take("a")
    # Just after the boundary the previous window still counts in full: no double burst.
    clock.now = T0 + WINDOW
    assert await lim.take("a") is None
    # Half-way through, half of it counts: 2 × 0.5 + 1 fits, 2 × 0.5 + 2 does not.
    clock.now = T0 + WINDOW + WINDOW / 2
    assert await lim.take("a")
    assert await lim.take("a") is None
    # Two windows on, only the one use of the last window weighs (fully, at its boundary).
    clock.now = T0 + 2 * WINDOW
    assert await lim.take("a")
    assert await lim.take("a") is None
    clock.now = T0 + 4 * WINDOW
    assert await lim.take("a") and await lim.take("a")


async def test_a_take_late_in_a_window_is_judged_by_the_allowance_left(app):
    clock = Clock(T0 + WINDOW - 1)
    lim = limiter(3, clock)
    for _ in range(3):
        assert await lim.take("a")
    clock.now = T0 + WINDOW + WINDOW * 0.9  # a tenth of the previous window still weighs: 0.3
    assert await lim.take("a") and await lim.take("a")
    assert await lim.take("a") is None


# ---- pruning ----------------------------------------------------------------------------


async def test_pruning_deletes_this_limiters_windows_older_than_the_previous_one(app):
    clock = Clock(T0 + 10 * WINDOW)
    lim, other = limiter(5, clock), limiter(5, clock)
    now_start = T0 + 10 * WINDOW
    for start in (now_start - 3 * WINDOW, now_start - 2 * WINDOW, now_start - WINDOW):
        await RateLimit.create(key=f"{lim.name}:old", window_start=start, count=1)
        await RateLimit.create(key=f"{other.name}:old", window_start=start, count=1)
    assert await lim.take("new")
    assert await counts(lim) == {("old", now_start - WINDOW): 1, ("new", now_start): 1}
    # Another limiter's rows are its own business.
    assert len(await counts(other)) == 3


async def test_pruning_runs_at_most_once_a_window_per_process(app):
    clock = Clock()
    lim = limiter(5, clock)
    assert await lim.take("a")
    await RateLimit.create(key=f"{lim.name}:stale", window_start=T0 - 5 * WINDOW, count=1)
    clock.now = T0 + WINDOW - 1
    assert await lim.take("a")
    assert ("stale", T0 - 5 * WINDOW) in await counts(lim)
    clock.now = T0 + WINDOW
    assert await lim.take("a")
    assert ("stale", T0 - 5 * WINDOW) not in await counts(lim)


# ---- concurrency and several processes --------------------------------------------------


async def test_concurrent_takes_never_admit_more_than_the_limit(app):
    lim = limiter(5)
    # One address, forty phone numbers: the address is what binds.
    results = await asyncio.gather(*(lim.take("ip", f"phone{i}") for i in range(40)))
    admitted = [i for i, r in enumerate(results) if r]
    assert len(admitted) == 5
    # Refusals gave their uses back: what is left is exactly what was admitted.
    assert await counts(lim) == {("ip", T0): 5} | {(f"phone{i}", T0): int(i in admitted) for i in range(40)}


async def test_concurrent_takes_on_a_key_already_near_its_limit_admit_only_the_rest(app):
    lim = limiter(10)
    for _ in range(7):
        assert await lim.take("ip")
    results = await asyncio.gather(*(lim.take("ip") for _ in range(30)))
    assert sum(1 for r in results if r) == 3
    assert await counts(lim) == {("ip", T0): 10}


async def test_the_submit_limit_holds_across_two_app_instances_sharing_the_database(app, settings):
    from hotline.web.app import create_app

    # Two web processes' view: their own state, one database. Not entered: their
    # lifespans would close the session's connections.
    first, second = create_app(settings), create_app(replace(settings))
    assert first.state is not second.state
    ip = f"192.0.2.{secrets.randbelow(254) + 1}"
    limit = settings.citizen_submit_limit
    for i in range(limit):
        async with new_client(first if i % 2 else second, ip) as client:
            assert (await submit(client, "/submit", complaint())).status_code == 200
    for instance in (first, second):
        async with new_client(instance, ip) as client:
            r = await submit(client, "/submit", complaint())
            assert r.status_code == 429 and "提交过于频繁" in r.text


CHILD = """
import asyncio, json, sys
from tortoise import Tortoise
from hotline.db import tortoise_config
from hotline.web.ratelimit import RateLimiter

async def main(url, name, limit, now):
    await Tortoise.init(config=tortoise_config(url))
    try:
        lim = RateLimiter(name, limit, 600, clock=lambda: now)
        print(json.dumps([bool(await lim.take("ip")) for _ in range(limit + 2)]))
    finally:
        await Tortoise.close_connections()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
"""


async def test_another_process_sees_the_uses_this_one_counted(app, database_url):
    lim = limiter(4)
    assert await lim.take("ip") and await lim.take("ip")
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, database_url, lim.name, "4", str(T0 + 1),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO,
    )
    out, err = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode == 0, err.decode()
    assert json.loads(out) == [True, True, False, False, False, False]
    # And this one sees the other's.
    assert await lim.take("ip") is None
    assert await counts(lim) == {("ip", T0): 4}
