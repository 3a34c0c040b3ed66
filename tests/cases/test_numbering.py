import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

from cases.numbering import QUERY_ALPHABET, new_query_code, next_case_number


async def test_concurrent_intakes_get_distinct_consecutive_numbers_of_the_day(app):
    now = datetime(2031, 5, 6, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    numbers = await asyncio.gather(*(next_case_number(now) for _ in range(40)))
    assert len(set(numbers)) == 40
    seqs = sorted(int(n.split("-")[1]) for n in numbers)
    assert seqs == list(range(seqs[0], seqs[0] + 40))
    assert all(n.startswith("20310506-") for n in numbers)


async def test_the_day_is_the_shanghai_day_not_the_utc_day(app):
    late_utc = datetime(2031, 5, 6, 17, 30, tzinfo=ZoneInfo("UTC"))  # 01:30 on the 7th in Shanghai
    assert (await next_case_number(late_utc)).startswith("20310507-")


def test_query_codes_avoid_characters_misheard_on_the_phone():
    code = new_query_code()
    assert len(code) == 6 and set(code) <= set(QUERY_ALPHABET)
    assert not set("01OIL") & set(QUERY_ALPHABET)
