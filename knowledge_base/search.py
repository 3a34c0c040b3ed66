"""A first knowledge-base search: past answers ranked by the words they share with a new message.

Until the knowledge base has its own curated entries, the replies of closed
cases are the best answers the hotline has. This module is only the ranking:
the caller brings the words (already cut and stripped of place names), so it
runs without a database or a tokenizer and is tested alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_LIMIT = 3
# One shared word ("小区", "问题") says nothing; two start to describe the same matter.
MIN_SHARED = 2


@dataclass(frozen=True)
class Match:
    key: str
    score: float
    shared_words: tuple[str, ...]


def rank_answers(
    query_words: Iterable[str],
    documents: Iterable[tuple[str, Iterable[str]]],
    *,
    limit: int = DEFAULT_LIMIT,
    min_shared: int = MIN_SHARED,
) -> list[Match]:
    """The documents sharing the most words with the query, best first.

    ``documents`` are ``(key, words)`` pairs. A word shared with few documents
    counts more than one most documents contain (an inverse document
    frequency), and longer words more than two-character ones, since 供暖费
    tells more than 问题. Ties keep the documents' given order, so callers pass
    the newest first and get the newest of equally good answers.
    """
    mine = {w for w in query_words if len(w) >= 2}
    if not mine or limit <= 0:
        return []
    docs = [(key, set(words)) for key, words in documents]
    n = len(docs)
    frequency: dict[str, int] = {}
    for _, words in docs:
        for w in words & mine:
            frequency[w] = frequency.get(w, 0) + 1

    def weight(word: str) -> float:
        idf = math.log(1 + n / frequency[word])
        return idf * (1.0 if len(word) == 2 else 1.3)

    found = []
    for order, (key, words) in enumerate(docs):
        shared = words & mine
        if len(shared) < min_shared:
            continue
        # Dividing by the document's size (its fourth root, gently) keeps a long reply that
        # mentions everything from beating a short one on the exact matter.
        score = sum(weight(w) for w in shared) / max(len(words), 1) ** 0.25
        found.append((score, order, Match(key, round(score, 4), tuple(sorted(shared, key=lambda w: (-len(w), w))))))
    found.sort(key=lambda t: (-t[0], t[1]))
    return [m for _, _, m in found[:limit]]
