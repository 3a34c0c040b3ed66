"""Possible duplicates (并单 candidates) for a new case.

"Same place, different problem" scores higher than a true paraphrase on raw
text, so candidates are blocked first by place and category (and recency), and
scored only on the issue words, with place words removed. Never merges: the
agent decides, through the case core's merge transition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Iterable

from rapidfuzz import fuzz

from cases import states
from cases.models import Case

DEFAULT_DAYS = 30
DEFAULT_THRESHOLD = 0.6
BLOCK_LIMIT = 300  # most recent cases in the block; older ones are rarely the same matter


@dataclass(frozen=True)
class Candidate:
    number: str
    score: float
    reason: str
    shared_words: tuple[str, ...]


def issue_words(tokens: Iterable[str], place_words: set[str]) -> list[str]:
    """The words that say what the problem is: no place names, no one-character noise."""
    out = []
    for w in tokens:
        if len(w) < 2 or w in place_words:
            continue
        if any(w.startswith(p) or w.endswith(p) for p in ("街道", "社区", "小区")) and len(w) <= 4:
            continue
        out.append(w)
    return out


def similarity(a: list[str], b: list[str]) -> float:
    """0..1: how much two cases' issue words agree (order-insensitive, fuzzy)."""
    if not a or not b:
        return 0.0
    sa, sb = " ".join(sorted(set(a))), " ".join(sorted(set(b)))
    # token_set_ratio alone rewards a short text contained in a long one;
    # averaging with token_sort_ratio keeps "one shared word" from scoring high.
    return (fuzz.token_set_ratio(sa, sb) + fuzz.token_sort_ratio(sa, sb)) / 200


def rank(
    new_words: list[str],
    others: Iterable[tuple[str, list[str]]],
    threshold: float = DEFAULT_THRESHOLD,
    limit: int = 5,
) -> list[Candidate]:
    found = []
    mine = set(new_words)
    for number, words in others:
        score = similarity(new_words, words)
        if score >= threshold:
            shared = tuple(sorted(mine & set(words)))[:8]
            reason = f"同一地点、同类问题，诉求相似度 {score:.0%}" + (
                f"（共同词：{'、'.join(shared)}）" if shared else ""
            )
            found.append(Candidate(number, round(score, 3), reason, shared))
    found.sort(key=lambda c: -c.score)
    return found[:limit]


async def find_duplicates(
    *,
    content: str,
    street_code: str,
    district_code: str,
    category_l1: str,
    tokenize: Callable[[str], list[str]],
    place_words: set[str],
    now: datetime,
    exclude_number: str | None = None,
    days: int = DEFAULT_DAYS,
    threshold: float = DEFAULT_THRESHOLD,
) -> list[Candidate]:
    """Open cases of the last ``days`` at the same place and of the same category, ranked."""
    if not (street_code or district_code):
        return []  # without a place there is no safe block to search
    qs = Case.filter(status__in=list(states.OPEN), created_at__gte=now - timedelta(days=days))
    qs = qs.filter(street_code=street_code) if street_code else qs.filter(district_code=district_code)
    if category_l1:
        qs = qs.filter(category_l1=category_l1)
    if exclude_number:
        qs = qs.exclude(number=exclude_number)
    # Each case's issue words were stored when it was classified, so only the
    # new text is cut here.
    rows = await qs.order_by("-created_at").limit(BLOCK_LIMIT).values_list("number", "keywords")
    new_words = issue_words(tokenize(content), place_words)
    others = ((n, kw.split()) for n, kw in rows if kw)
    return rank(new_words, others, threshold)
