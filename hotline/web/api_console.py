"""The agent console's endpoints: a caller's history by phone, and suggestions while typing.

The suggestion is everything an agent wants in view before deciding, in one
round trip per pause in typing: routing's category, place and lead unit with
the alternatives and their words, past answers to similar questions, and open
cases that may be the same matter.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from cases import states
from cases.actors import AGENT, DISPATCHER
from cases.errors import InvalidInput
from cases.models import Case, Unit
from cases.payloads import RequestType
from hotline.web import schemas as sc
from hotline.web.api import api, search_cases_for
from hotline.web.framework import Call
from knowledge_base.search import rank_answers
from routing import text as routing_text
from routing.duplicates import issue_words

CONSOLE_ROLES = frozenset({AGENT, DISPATCHER})
# The newest closed cases searched for answers: enough to cover the common
# questions, few enough to rank on every pause in typing.
ANSWER_POOL = 400
ANSWER_PREVIEW = 600
_WORD_CACHE_LIMIT = 20_000


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9\-]{4,19}$")]


class HistoryItem(BaseModel):
    number: str
    title: str
    status: str
    status_label: str
    created_at: datetime
    confidential: bool
    caller_name: str
    caller_phone: str


class HistoryOut(BaseModel):
    total: int
    items: list[HistoryItem]


class SuggestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""
    content: Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000)] = ""
    address: Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)] = ""
    request_type: RequestType = "consult"


class UnitRef(BaseModel):
    id: int
    name: str


class PlaceOut(BaseModel):
    district_code: str
    district_name: str
    street_code: str
    street_name: str
    confidence: float


class AlternativeOut(BaseModel):
    category: str
    probability: float
    lead_unit: UnitRef | None
    words: list[str]
    reason: str


class AnswerOut(BaseModel):
    number: str
    title: str
    reply_text: str
    score: float
    shared_words: list[str]


class DuplicateOut(BaseModel):
    number: str
    title: str
    status_label: str
    created_at: datetime
    score: float
    reason: str
    shared_words: list[str]


class SuggestOut(BaseModel):
    model_version: str
    category: str
    confidence: float
    auto: bool
    reason: str
    place: PlaceOut
    lead_unit: UnitRef | None
    co_units: list[UnitRef]
    alternatives: list[AlternativeOut]
    keywords: list[str]
    answers: list[AnswerOut]
    duplicates: list[DuplicateOut]


@api.add("GET", "/api/console/history", "来电人历史工单（按电话号码）", query=HistoryQuery, response=HistoryOut, roles=CONSOLE_ROLES, tag="console")
async def caller_history(call: Call):
    # The case search applies visibility and masks confidential callers.
    found = await search_cases_for(call.actor, sc.CaseQuery(phone=call.query.phone, limit=20))
    return HistoryOut(
        total=found.total,
        items=[
            HistoryItem(
                number=c.number, title=c.title or c.content[:30], status=c.status, status_label=c.status_label,
                created_at=c.created_at, confidential=c.confidential, caller_name=c.caller_name,
                caller_phone=c.caller_phone,
            )
            for c in found.items
        ],
    )


@api.add("POST", "/api/console/suggest", "坐席录入时的智能提示（分类、属地、承办单位、知识库答复、疑似重复）", body=SuggestIn, response=SuggestOut, roles=CONSOLE_ROLES, tag="console")
async def suggest(call: Call):
    b = call.body
    if not (b.title or b.content):
        raise InvalidInput("请先输入诉求标题或内容", field="content")
    routing = call.state.routing
    decision, version, keywords = await routing.suggest(
        title=b.title, content=b.content, address=b.address, request_type=b.request_type
    )
    unit_ids = {decision.route.lead_unit_id, *decision.route.co_unit_ids}
    unit_ids |= {a.lead_unit_id for a in decision.alternatives}
    unit_ids.discard(None)
    names = dict(await Unit.filter(id__in=list(unit_ids)).values_list("id", "name")) if unit_ids else {}

    def ref(unit_id: int | None) -> UnitRef | None:
        return UnitRef(id=unit_id, name=names.get(unit_id, f"单位{unit_id}")) if unit_id else None

    words = list(dict.fromkeys(keywords))
    answers = await knowledge_answers(routing, words)
    duplicates = await draft_duplicates(routing, b, decision)
    return SuggestOut(
        model_version=version,
        category=decision.category,
        confidence=decision.confidence,
        auto=decision.auto,
        reason=decision.reason,
        place=_place_out(routing, decision.place),
        lead_unit=ref(decision.route.lead_unit_id),
        co_units=[ref(u) for u in decision.route.co_unit_ids if u],
        alternatives=[
            AlternativeOut(
                category=a.category, probability=round(a.probability, 4), lead_unit=ref(a.lead_unit_id),
                words=list(a.words), reason=a.reason,
            )
            for a in decision.alternatives
        ],
        keywords=words[:20],
        answers=answers,
        duplicates=duplicates,
    )


def _place_out(routing, place) -> PlaceOut:
    def name(code: str) -> str:
        division = routing.gazetteer.division(code) if code and routing.gazetteer else None
        return division.name if division else ""

    return PlaceOut(
        district_code=place.district_code, district_name=name(place.district_code),
        street_code=place.street_code, street_name=name(place.street_code),
        confidence=round(place.confidence, 4),
    )


# ---- knowledge-base answers ------------------------------------------------------------

# Words of closed cases, by case id: a closed case's text no longer changes,
# so it is cut once per process rather than on every keystroke.
_doc_words: dict[int, tuple[str, ...]] = {}
_place_words: dict[int, frozenset[str]] = {}


def _places(routing) -> frozenset[str]:
    gaz = routing.gazetteer
    key = id(gaz)
    if key not in _place_words:
        _place_words.clear()
        _place_words[key] = frozenset(gaz.words()) if gaz is not None else frozenset()
    return _place_words[key]


def _cut(rows: list[dict], places: frozenset[str]) -> dict[int, tuple[str, ...]]:
    out = {}
    for r in rows:
        text = f"{r['title']}\n{r['content']}\n{r['reply_text'][:1000]}"
        out[r["id"]] = tuple(dict.fromkeys(issue_words(routing_text.tokens(text, max_chars=2000), set(places))))
    return out


async def knowledge_answers(routing, words: list[str]) -> list[AnswerOut]:
    """Replies of closed cases that share the most issue words with the draft.

    A stand-in until the knowledge base has entries of its own. Confidential
    cases are left out: their replies may speak of the caller.
    """
    if len(words) < 2:
        return []
    rows = await (
        Case.filter(status=states.CLOSED, confidential=False)
        .exclude(reply_text="")
        .order_by("-id")
        .limit(ANSWER_POOL)
        .values("id", "number", "title", "content", "reply_text")
    )
    missing = [r for r in rows if r["id"] not in _doc_words]
    if missing:
        if len(_doc_words) + len(missing) > _WORD_CACHE_LIMIT:
            _doc_words.clear()
        _doc_words.update(await asyncio.to_thread(_cut, missing, _places(routing)))
    by_number = {r["number"]: r for r in rows}
    ranked = rank_answers(words, ((r["number"], _doc_words.get(r["id"], ())) for r in rows))
    return [
        AnswerOut(
            number=m.key,
            title=by_number[m.key]["title"] or by_number[m.key]["content"][:30],
            reply_text=by_number[m.key]["reply_text"][:ANSWER_PREVIEW],
            score=m.score,
            shared_words=list(m.shared_words),
        )
        for m in ranked
    ]


# ---- possible duplicates of the draft ----------------------------------------------------


async def draft_duplicates(routing, b: SuggestIn, decision) -> list[DuplicateOut]:
    # Routing's search takes a case; an unsaved one carries the draft's text and
    # the suggested place and category, which is all the search reads.
    draft = Case(
        number="", title=b.title, content=b.content,
        district_code=decision.place.district_code, street_code=decision.place.street_code,
        category_l1=decision.category, created_at=datetime.now(timezone.utc),
    )
    found = await routing.duplicates(draft)
    if not found:
        return []
    rows = {
        r["number"]: r
        for r in await Case.filter(number__in=[c.number for c in found]).values("number", "title", "content", "status", "created_at")
    }
    return [
        DuplicateOut(
            number=c.number,
            title=rows[c.number]["title"] or rows[c.number]["content"][:30],
            status_label=states.LABELS.get(rows[c.number]["status"], rows[c.number]["status"]),
            created_at=rows[c.number]["created_at"],
            score=c.score,
            reason=c.reason,
            shared_words=list(c.shared_words),
        )
        for c in found
        if c.number in rows
    ]
