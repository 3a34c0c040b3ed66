"""Routing endpoints: the dispatch catalogue, a case's routing suggestions and possible duplicates."""

from __future__ import annotations

from pydantic import BaseModel
from starlette.responses import Response

from cases.actors import ADMIN, AGENT, DISPATCHER, LEADER
from cases.errors import InvalidInput
from hotline.web.api import NUMBER_PARAM, api, visible_case
from hotline.web.framework import ApiError, Call
from routing.catalogue_store import CatalogueError, export_csv, import_csv
from routing.models import RoutingDecision

CENTRE_READ = frozenset({AGENT, DISPATCHER, LEADER, ADMIN})
CSV_BODY = {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}


class ImportOut(BaseModel):
    imported: int


class Suggestion(BaseModel):
    category: str
    probability: float
    lead_unit_id: int | None
    words: list[str]
    reason: str


class RoutingOut(BaseModel):
    model_version: str
    category: str
    confidence: float
    district_code: str
    street_code: str
    place_confidence: float
    lead_unit_id: int | None
    co_unit_ids: list[int]
    auto_dispatched: bool
    reason: str
    alternatives: list[Suggestion]


class DuplicateOut(BaseModel):
    number: str
    score: float
    reason: str
    shared_words: list[str]


@api.add("GET", "/api/routing/catalogue.csv", "导出派单目录（CSV）", roles=CENTRE_READ, tag="routing")
async def catalogue_export(call: Call):
    return Response(await export_csv(), media_type="text/csv; charset=utf-8")


@api.add("PUT", "/api/routing/catalogue.csv", "以 CSV 整体替换派单目录", response=ImportOut, roles=frozenset({ADMIN}), raw_body=CSV_BODY, tag="routing")
async def catalogue_import(call: Call):
    if not call.request.headers.get("content-type", "").startswith("text/csv"):
        raise ApiError(415, "unsupported_media_type", "请以 text/csv 上传派单目录")
    try:
        text = (await call.request.body()).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("文件不是 UTF-8 编码", field="body") from None
    try:
        n = await import_csv(text)
    except CatalogueError as exc:
        raise InvalidInput("派单目录未导入", errors=[{"field": "body", "message": p} for p in exc.problems]) from None
    call.state.routing.invalidate_catalogue()
    return ImportOut(imported=n)


@api.add("GET", "/api/cases/{number}/routing", "智能派单建议", response=RoutingOut, path_params=NUMBER_PARAM, roles=CENTRE_READ, tag="routing")
async def case_routing(call: Call):
    case = await visible_case(call.actor, call.path["number"])
    row = await RoutingDecision.filter(case_id=case.id).order_by("-id").first()
    if row is None:
        raise ApiError(404, "not_found", "该工单没有智能派单记录")
    return RoutingOut(
        model_version=row.model_version, category=row.category, confidence=row.confidence,
        district_code=row.district_code, street_code=row.street_code,
        place_confidence=row.place_confidence, lead_unit_id=row.lead_unit_id,
        co_unit_ids=list(row.co_unit_ids or []), auto_dispatched=row.auto_dispatched,
        reason=row.reason, alternatives=[Suggestion(**a) for a in row.alternatives or []],
    )


@api.add("GET", "/api/cases/{number}/duplicates", "可能重复的工单（并单候选）", response=DuplicateOut, response_list=True, path_params=NUMBER_PARAM, roles=frozenset({AGENT, DISPATCHER}), tag="routing")
async def case_duplicates(call: Call):
    case = await visible_case(call.actor, call.path["number"])
    found = await call.state.routing.duplicates(case)
    return [DuplicateOut(number=c.number, score=c.score, reason=c.reason, shared_words=list(c.shared_words)) for c in found]
