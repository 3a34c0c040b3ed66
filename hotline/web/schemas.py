"""Request and response shapes of the JSON API that are not case-core inputs."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from cases import states
from cases.payloads import Strict


def Trimmed(max_length: int, *, required: bool = True):  # noqa: N802 - a type
    """Text whose published limits hold for the text as sent; it is trimmed afterwards.

    (``strip_whitespace`` would trim first: "  x  " past maxLength got in, and
    " " within minLength was refused.) Required text must show a non-space character.
    """
    limits = StringConstraints(min_length=1, max_length=max_length, pattern=r"\S") if required else StringConstraints(max_length=max_length)
    return Annotated[str, limits, AfterValidator(str.strip)]


Name = Trimmed(64)
Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{2,64}$")]
Password = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Role = Literal["agent", "dispatcher", "handler", "leader", "admin"]
CaseNumber = Annotated[str, StringConstraints(pattern=r"^[0-9]{8}-[0-9]{6}$")]
StatusName = Literal[tuple(states.ALL)]  # type: ignore[valid-type]


class LoginIn(Strict):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    password: Password


class PasswordChangeIn(Strict):
    current_password: Password
    new_password: Password


class TokenIn(Strict):
    name: Name


class TokenOut(BaseModel):
    token: str
    name: str


class UnitIn(Strict):
    name: Trimmed(100)
    kind: Literal["functional", "territorial", "centre"]
    parent_id: Annotated[int, Field(ge=1, le=2_147_483_647)] | None = None
    division_code: Annotated[str, StringConstraints(pattern=r"^[0-9]{2,12}$")] | None = None


class UnitOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    kind: str
    division_code: str | None
    parent_id: int | None


class UserIn(Strict):
    username: Username
    display_name: Trimmed(64, required=False) = ""
    role: Role
    unit_id: Annotated[int, Field(ge=1, le=2_147_483_647)] | None = None
    password: Password


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    username: str
    display_name: str
    role: str
    unit_id: int | None


class SessionOut(BaseModel):
    user: UserOut
    csrf_token: str


class RevealIn(Strict):
    reason: Trimmed(200)


class RevealOut(BaseModel):
    caller_phone: str


def _query_text_is(pattern: str, message: str):
    """Query values arrive as text; only this exact spelling may be read as the type.

    Pydantic's lax parsing would read "0" as 1970-01-01, "1.0" or "1_0" as
    integers: values the published schema calls invalid.
    """
    regex = re.compile(pattern)

    def check(value):
        if isinstance(value, str) and not regex.fullmatch(value):
            raise ValueError(message)
        return value

    return BeforeValidator(check)


QueryDate = Annotated[date, _query_text_is(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", "日期格式应为 YYYY-MM-DD")]
QueryInt = _query_text_is(r"-?[0-9]{1,12}", "应为整数")


class CreateCaseQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Route the new case now (true) or leave it 待受理 for the agent (false);
    # unset follows HOTLINE_AUTO_ROUTE.
    route: bool | None = None
    # The call during which an agent made the case: the caller's call log is
    # linked to it (an agent's own leg stands for the caller it is talking to).
    call_sid: Annotated[str, StringConstraints(pattern=r"^CA[0-9a-fA-F]{32}$")] | None = None


class CaseQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: CaseNumber | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9\-]{3,20}$")] | None = None
    q: Trimmed(100) | None = None
    status: StatusName | None = None
    unit_id: Annotated[int, Field(ge=1, le=2_147_483_647), QueryInt] | None = None
    created_from: QueryDate | None = None
    created_to: QueryDate | None = None
    limit: Annotated[int, Field(ge=1, le=200), QueryInt] = 50
    offset: Annotated[int, Field(ge=0, le=100_000), QueryInt] = 0


class AssignmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    unit_id: int
    role: str
    status: str
    active: bool
    dispatched_at: datetime
    sign_due: datetime | None
    reply_due: datetime | None
    signed_at: datetime | None
    replied_at: datetime | None
    reply_text: str


class CaseOut(BaseModel):
    number: str
    query_code: str | None
    version: int
    status: str
    status_label: str
    channel: str
    request_type: str
    category_l1: str
    category_l2: str
    category_l3: str
    title: str
    content: str
    caller_name: str
    caller_phone: str
    confidential: bool
    address: str
    district_code: str
    street_code: str
    urgency: str
    lead_unit_id: int | None
    accept_due: datetime | None
    sign_due: datetime | None
    contact_due: datetime | None
    reply_due: datetime | None
    return_until: datetime | None
    callback_due: datetime | None
    deadlines_provisional: bool
    dispatched_at: datetime | None
    signed_at: datetime | None
    contacted_at: datetime | None
    replied_at: datetime | None
    closed_at: datetime | None
    reply_text: str
    close_reason: str
    out_of_scope_channel: str
    return_reason: str
    extension_requested_days: int | None
    callback_contacted: bool | None
    callback_resolved: str
    callback_satisfaction: str
    callback_attempts: int
    return_count: int
    rehandle_count: int
    extension_count: int
    supervision_level: int
    unreasonable: str
    merged_into_id: int | None
    source_id: str | None
    created_at: datetime
    updated_at: datetime
    assignments: list[AssignmentOut] = []
    read_only: bool = False


class CaseList(BaseModel):
    total: int
    items: list[CaseOut]


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    action: str
    actor_name: str
    actor_role: str
    unit_id: int | None
    from_status: str
    to_status: str
    payload: dict
    created_at: datetime


class CalendarDayIn(Strict):
    is_workday: bool
    note: Trimmed(100, required=False) = ""


class CalendarOut(BaseModel):
    provisional_years: list[int]
    open_provisional_cases: int
    entered_years: list[int]
    overrides: list[dict]


class RecomputeOut(BaseModel):
    recomputed: int


class PolicyOut(BaseModel):
    kind: str
    label: str
    sign: str
    contact: str | None
    reply: str


class AttachmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    filename: str
    content_type: str
    size: int
    sha256: str
    purpose: str
    created_at: datetime
