"""Validated inputs of the case core: new cases and every lifecycle action.

The web layer publishes these same models in its OpenAPI document, so the
limits written here are the limits clients see.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
OptionalShort = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9\-]{4,19}$")]
Code = Annotated[str, StringConstraints(pattern=r"^[0-9]{2,12}$")]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)]
UnitId = Annotated[int, Field(ge=1, le=2_147_483_647)]
DetailKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
DetailText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)]
# Two levels of short strings at most: enough for a channel's answers, too small to become a store.
Details = Annotated[
    dict[DetailKey, DetailText | Annotated[dict[DetailKey, DetailText], Field(max_length=20)]],
    Field(max_length=20),
]

RequestType = Literal["consult", "help", "complaint", "report", "suggestion", "praise"]
Channel = Literal["phone", "web", "window", "agent", "duty_day", "partner", "sms"]
Urgency = Literal[
    "urgent", "utilities", "general", "complex", "consult",
    "window_simple", "window_complex", "window_special", "window_refusal",
]
ReturnReason = Literal[
    "not_our_function",  # 非本单位职能
    "not_our_territory",  # 非本辖区
    "wrong_category",  # 分类错误
    "insufficient_info",  # 信息不全无法办理
    "duplicate",  # 重复工单
    "other",
]
RETURN_REASON_LABELS = {
    "not_our_function": "非本单位职能",
    "not_our_territory": "非本辖区",
    "wrong_category": "分类错误",
    "insufficient_info": "信息不全无法办理",
    "duplicate": "重复工单",
    "other": "其他",
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewCase(Strict):
    channel: Channel = "agent"
    request_type: RequestType = "consult"
    title: OptionalShort = ""
    content: Text
    caller_name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] = ""
    caller_phone: Phone | Literal[""] = ""
    confidential: bool = False
    address: Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)] = ""
    district_code: Code | Literal[""] = ""
    street_code: Code | Literal[""] = ""
    category_l1: Annotated[str, StringConstraints(max_length=64)] = ""
    category_l2: Annotated[str, StringConstraints(max_length=64)] = ""
    category_l3: Annotated[str, StringConstraints(max_length=64)] = ""
    urgency: Urgency = "general"
    source_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    # Channel-specific intake answers, e.g. {"window": {"matter": ..., "place": ...}}.
    details: Details = {}


class NoteOnly(Strict):
    note: Note = ""


class AnswerOnSpot(Strict):
    answer: Text


class Reject(Strict):
    reason: Short
    proper_channel: Short  # e.g. 向人民法院起诉 / 信访部门


class TransferOut(Strict):
    target: Literal["110", "119", "120", "122", "other"]
    note: Note = ""


Category = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]


class Dispatch(Strict):
    lead_unit_id: UnitId
    co_unit_ids: Annotated[list[UnitId], Field(max_length=10)] = []
    urgency: Urgency | None = None
    # The dispatcher may correct the category while dispatching.
    category_l1: Category = ""
    category_l2: Category = ""
    category_l3: Category = ""
    note: Note = ""

    @model_validator(mode="after")
    def _distinct_units(self):
        if self.lead_unit_id in self.co_unit_ids:
            raise ValueError("主办单位不能同时作为协办单位")
        if len(set(self.co_unit_ids)) != len(self.co_unit_ids):
            raise ValueError("协办单位重复")
        return self


class Classify(Strict):
    category_l1: Category
    category_l2: Category = ""
    category_l3: Category = ""
    district_code: Code | Literal[""] = ""
    street_code: Code | Literal[""] = ""
    confidence: Annotated[float, Field(ge=0, le=1)]
    model_version: Annotated[str, StringConstraints(max_length=32)] = ""
    keywords: Annotated[list[Annotated[str, StringConstraints(max_length=20)]], Field(max_length=60)] = []
    alternatives: Annotated[list[dict], Field(max_length=5)] = []
    note: Note = ""


class RecordContact(Strict):
    note: Note = ""
    contacted_at: datetime | None = None


class Reply(Strict):
    text: Text


class RequestReturn(Strict):
    reason_code: ReturnReason
    note: Note = ""


class RequestExtension(Strict):
    days: Annotated[int, Field(ge=1, le=10)]
    reason: Short


class CallbackResult(Strict):
    contacted: bool
    resolved: Literal["resolved", "partly", "unresolved", ""] = ""
    satisfaction: Literal["satisfied", "basically", "unsatisfied", ""] = ""
    note: Note = ""

    @model_validator(mode="after")
    def _answers_when_contacted(self):
        if self.contacted and (not self.resolved or not self.satisfaction):
            raise ValueError("联系上市民时必须填写是否解决和是否满意")
        return self


class Merge(Strict):
    primary_number: Annotated[str, StringConstraints(pattern=r"^[0-9]{8}-[0-9]{6}$")]
    note: Note = ""


class Handoff(Strict):
    partner_code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
    summary: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    note: Note = ""


class ConfirmHandoff(Strict):
    partner_ref: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    via: Literal["api", "phone"] = "phone"
    note: Note = ""


class FinishHandoff(Strict):
    result: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class Supervise(Strict):
    level: Annotated[int, Field(ge=1, le=3)]
    note: Note = ""


class FlagUnreasonable(Strict):
    reason: Short


class ReviewUnreasonable(Strict):
    upheld: bool
    note: Note = ""
