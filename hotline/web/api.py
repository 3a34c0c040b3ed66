"""The JSON API under /api/."""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, time, timedelta

from starlette.background import BackgroundTask
from starlette.responses import JSONResponse, Response
from tortoise.expressions import Q, Subquery

from cases import states
from cases.actors import ADMIN, AGENT, DISPATCHER, HANDLER, LEADER, Actor
from cases.attachments import add_attachment
from cases.calendar_store import (
    calendar_status,
    mark_year_entered,
    recompute_provisional,
    set_override,
)
from cases.errors import Forbidden, InvalidInput, NotFound
from cases.intake import create_case
from cases.lifecycle import TRANSITIONS, perform
from cases.models import (
    Attachment,
    CalendarOverride,
    CalendarYear,
    Case,
    CaseAssignment,
    CaseEvent,
    PhoneReveal,
    Unit,
    User,
)
from cases.payloads import NewCase
from cases.sla import SHANGHAI
from cases.visibility import caller_view, may_reveal_phone, visible_cases
from hotline.auth import (
    Throttled,
    check_password_strength,
    hash_password,
    issue_token,
    verify_password,
)
from hotline.auth import (
    authenticate as check_login,
)
from hotline.channels.voice import link_case
from hotline.web import schemas as sc
from hotline.web.framework import Api, ApiError, Call
from hotline.web.security import authenticate, client_ip, start_session

api = Api(authenticate)
log = logging.getLogger("hotline.api")

NUMBER_PARAM = {"number": {"type": "string", "pattern": r"^[0-9]{8}-[0-9]{6}$"}}
CASE_NUMBER = re.compile(r"[0-9]{8}-[0-9]{6}")
CENTRE_WRITE = frozenset({AGENT, DISPATCHER, ADMIN})


# ---- session and account -----------------------------------------------------------


@api.add("POST", "/api/session", "登录（网页会话）", body=sc.LoginIn, response=sc.SessionOut, public=True, tag="auth", responses={401: None, 429: None})
async def login(call: Call):
    try:
        user = await check_login(call.body.username, call.body.password, client_ip(call.request))
    except Throttled:
        raise ApiError(429, "throttled", "登录失败次数过多，请15分钟后再试") from None
    if user is None:
        raise ApiError(401, "bad_credentials", "用户名或密码错误")
    csrf = start_session(call.request, user)
    return sc.SessionOut(user=sc.UserOut.model_validate(user), csrf_token=csrf)


@api.add("DELETE", "/api/session", "退出登录", public=True, tag="auth")
async def logout(call: Call):
    call.request.session.clear()
    return {"ok": True}


@api.add("GET", "/api/me", "当前用户", response=sc.UserOut, tag="auth")
async def me(call: Call):
    return sc.UserOut.model_validate(call.user)


@api.add("POST", "/api/me/password", "修改本人密码", body=sc.PasswordChangeIn, tag="auth")
async def change_password(call: Call):
    user = call.user
    if not verify_password(user, call.body.current_password):
        raise InvalidInput("当前密码不正确", field="current_password")
    problem = check_password_strength(call.body.new_password)
    if problem:
        raise InvalidInput(problem, field="new_password")
    user.password_hash = hash_password(call.body.new_password)
    user.session_version += 1
    await user.save(update_fields=["password_hash", "session_version"])
    if "uid" in call.request.session:
        start_session(call.request, user)
    return {"ok": True}


@api.add("POST", "/api/tokens", "为本人签发接口令牌", body=sc.TokenIn, response=sc.TokenOut, status=201, tag="auth")
async def create_token(call: Call):
    token = await issue_token(call.user, call.body.name)
    return sc.TokenOut(token=token, name=call.body.name)


# ---- units and users -------------------------------------------------------------------


@api.add("GET", "/api/units", "承办单位列表", response=sc.UnitOut, response_list=True, tag="admin")
async def list_units(call: Call):
    return [sc.UnitOut.model_validate(u) for u in await Unit.filter(is_active=True).order_by("id")]


@api.add("POST", "/api/units", "新增承办单位", body=sc.UnitIn, response=sc.UnitOut, status=201, roles=frozenset({ADMIN}), tag="admin")
async def create_unit(call: Call):
    b = call.body
    if b.parent_id is not None and not await Unit.exists(id=b.parent_id):
        raise InvalidInput("上级单位不存在", field="parent_id")
    if await Unit.exists(name=b.name):
        raise ApiError(409, "exists", "单位名称已存在")
    unit = await Unit.create(**b.model_dump())
    return sc.UnitOut.model_validate(unit)


@api.add("POST", "/api/users", "新增用户", body=sc.UserIn, response=sc.UserOut, status=201, roles=frozenset({ADMIN}), tag="admin")
async def create_user(call: Call):
    b = call.body
    if (b.role == HANDLER) != (b.unit_id is not None):
        raise InvalidInput("承办人员必须且只有承办人员需要指定单位", field="unit_id")
    if b.unit_id is not None and not await Unit.exists(id=b.unit_id):
        raise InvalidInput("单位不存在", field="unit_id")
    problem = check_password_strength(b.password)
    if problem:
        raise InvalidInput(problem, field="password")
    if await User.exists(username=b.username):
        raise ApiError(409, "exists", "用户名已存在")
    user = await User.create(
        username=b.username,
        display_name=b.display_name,
        role=b.role,
        unit_id=b.unit_id,
        password_hash=hash_password(b.password),
    )
    return sc.UserOut.model_validate(user)


# ---- cases -------------------------------------------------------------------------------


async def case_out(case: Case, actor: Actor, *, with_assignments: bool = True) -> sc.CaseOut:
    data = {name: getattr(case, name) for name in sc.CaseOut.model_fields if hasattr(case, name)}
    data.update(caller_view(actor, case))
    data["status_label"] = states.LABELS.get(case.status, case.status)
    data["assignments"] = []
    data["read_only"] = False
    if actor.role == HANDLER:
        data["query_code"] = None  # the citizen's code is for the citizen and the centre
    if with_assignments:
        rows = await CaseAssignment.filter(case_id=case.id).order_by("id")
        data["assignments"] = [sc.AssignmentOut.model_validate(a) for a in rows]
        if actor.role == HANDLER:
            data["read_only"] = not any(a.active and a.unit_id == actor.unit_id for a in rows)
    return sc.CaseOut.model_validate(data)


async def visible_case(actor: Actor, number: str) -> Case:
    if not CASE_NUMBER.fullmatch(number):
        raise NotFound(f"工单 {number[:20]} 不存在")
    case = await visible_cases(actor).filter(number=number).first()
    if case is None:
        raise NotFound(f"工单 {number} 不存在")
    return case


# 200: a repeated source_id returns the case made the first time.
@api.add("POST", "/api/cases", "新建工单", body=NewCase, query=sc.CreateCaseQuery, response=sc.CaseOut, status=201, roles=CENTRE_WRITE, responses={200: sc.CaseOut})
async def create_case_endpoint(call: Call):
    route = call.query.route if call.query.route is not None else call.state.settings.auto_route
    case, created = await create_case(call.body, call.actor, ladder=call.state.sla.ladder, route=route)
    if created and call.query.call_sid:
        await link_case(call.query.call_sid, case, call.user.id)
    # A new case has no assignments yet; a replayed one may.
    out = await case_out(case, call.actor, with_assignments=not created)
    background = None
    if created and route:
        # Routing runs after the answer is sent (in the worker when there is one),
        # so intake stays fast; a case it misses is routed by the next sweep.
        background = BackgroundTask(call.state.jobs.route_soon, case)
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if created else 200, background=background)


async def search_cases_for(actor: Actor, query: sc.CaseQuery | None = None, **filters) -> sc.CaseList:
    q = query or sc.CaseQuery(**filters)
    qs = visible_cases(actor)
    if q.number:
        qs = qs.filter(number=q.number)
    if q.phone:
        qs = qs.filter(caller_phone=q.phone)
        if not may_reveal_phone(actor):
            # Searching by phone must not reveal whom a confidential caller is.
            qs = qs.filter(confidential=False)
    if q.q:
        text = Q(title__icontains=q.q) | Q(content__icontains=q.q) | Q(address__icontains=q.q)
        if CASE_NUMBER.fullmatch(q.q):
            # Only a well-formed number: tortoise refuses a filter value longer than the column.
            text |= Q(number=q.q)
        qs = qs.filter(text)
    if q.status:
        qs = qs.filter(status=q.status)
    if q.unit_id:
        # tortoise 1.x needs Subquery around a ValuesQuery in ``__in``.
        qs = qs.filter(id__in=Subquery(CaseAssignment.filter(unit_id=q.unit_id, active=True).values("case_id")))
    if q.created_from:
        qs = qs.filter(created_at__gte=datetime.combine(q.created_from, time.min, SHANGHAI))
    if q.created_to:
        end = datetime.combine(q.created_to + timedelta(days=1), time.min, SHANGHAI)
        qs = qs.filter(created_at__lt=end)
    total = await qs.count()
    rows = await qs.order_by("-id").offset(q.offset).limit(q.limit)
    items = [await case_out(c, actor, with_assignments=False) for c in rows]
    return sc.CaseList(total=total, items=items)


@api.add("GET", "/api/cases", "查询工单", query=sc.CaseQuery, response=sc.CaseList)
async def search_cases(call: Call):
    return await search_cases_for(call.actor, call.query)


@api.add("GET", "/api/cases/{number}", "工单详情", response=sc.CaseOut, path_params=NUMBER_PARAM)
async def get_case(call: Call):
    return await case_out(await visible_case(call.actor, call.path["number"]), call.actor)


@api.add("GET", "/api/cases/{number}/events", "工单流转记录", response=sc.EventOut, response_list=True, path_params=NUMBER_PARAM)
async def case_events(call: Call):
    case = await visible_case(call.actor, call.path["number"])
    rows = await CaseEvent.filter(case_id=case.id).order_by("id")
    return [sc.EventOut.model_validate(e) for e in rows]


@api.add("POST", "/api/cases/{number}/reveal-phone", "查看保密来电人号码（记录访问日志）", body=sc.RevealIn, response=sc.RevealOut, path_params=NUMBER_PARAM, roles=frozenset({AGENT, DISPATCHER}))
async def reveal_phone(call: Call):
    case = await visible_case(call.actor, call.path["number"])
    if case.confidential:
        await PhoneReveal.create(case_id=case.id, user_id=call.user.id, reason=call.body.reason)
    return sc.RevealOut(caller_phone=case.caller_phone)


def _action_endpoint(action: str):
    async def act(call: Call):
        sla_ctx = await call.state.sla.get()
        case = await perform(
            call.path["number"], action, call.actor, call.body, sla_context=sla_ctx
        )
        if action == "dispatch":
            # A person's dispatch that differs from routing's proposal teaches it.
            await call.state.routing.learn_from_dispatch(case)
        return await case_out(case, call.actor)

    act.__name__ = f"case_{action}"
    return act


for _action, _t in TRANSITIONS.items():
    api.add(
        "POST",
        f"/api/cases/{{number}}/{_action.replace('_', '-')}",
        f"{_t.label}（{_action}）",
        body=_t.payload,
        response=sc.CaseOut,
        path_params=NUMBER_PARAM,
        roles=_t.roles,
        operation_id=f"case_{_action}",
        tag="lifecycle",
    )(_action_endpoint(_action))


# ---- attachments ---------------------------------------------------------------------------

UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        }
    },
}


@api.add("POST", "/api/cases/{number}/attachments", "上传附件（图片或 PDF）", response=sc.AttachmentOut, status=201, path_params=NUMBER_PARAM, raw_body=UPLOAD_BODY, max_body=11 * 1024 * 1024)
async def upload_attachment(call: Call):
    case = await visible_case(call.actor, call.path["number"])
    if call.actor.role == HANDLER and not await CaseAssignment.exists(case_id=case.id, unit_id=call.actor.unit_id, active=True):
        raise Forbidden("只读工单不能上传附件")
    if call.actor.role == LEADER:
        raise Forbidden("当前角色不能上传附件")
    settings = call.state.settings
    ctype = call.request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise ApiError(415, "unsupported_media_type", "请使用 multipart/form-data 上传")
    try:
        async with call.request.form(max_files=1, max_fields=5) as form:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise InvalidInput("缺少文件", field="file")
            data = await upload.read(settings.max_attachment_bytes + 1)
            name = upload.filename or "file"
    except ApiError:
        raise
    except InvalidInput:
        raise
    except Exception as exc:  # malformed multipart bodies
        if getattr(exc, "status_code", None) == 413:
            raise ApiError(413, "too_large", "文件过大") from None
        raise ApiError(400, "bad_multipart", "上传内容格式错误") from None
    att = await add_attachment(case, call.actor, name, data, call.state.storage, max_bytes=settings.max_attachment_bytes)
    return sc.AttachmentOut.model_validate(att)


@api.add("GET", "/api/attachments/{attachment_id}", "下载附件", path_params={"attachment_id": {"type": "integer", "minimum": 1, "maximum": 2147483647}})
async def download_attachment(call: Call):
    try:
        att_id = int(call.path["attachment_id"])
    except ValueError:
        raise NotFound("附件不存在") from None
    att = await Attachment.get_or_none(id=att_id)
    if att is None or not await visible_cases(call.actor).filter(id=att.case_id).exists():
        raise NotFound("附件不存在")
    try:
        data = call.state.storage.read(att.storage_key)
    except FileNotFoundError:
        raise NotFound("附件文件已丢失") from None
    return Response(data, media_type=att.content_type, headers={"Content-Disposition": "attachment", "X-Content-Type-Options": "nosniff"})


# ---- calendar and policies -----------------------------------------------------------------


@api.add("GET", "/api/calendar", "工作日历状态（未覆盖年份警告）", response=sc.CalendarOut, roles=frozenset({ADMIN, DISPATCHER, LEADER}), tag="admin")
async def get_calendar(call: Call):
    ctx = await call.state.sla.get()
    status = await calendar_status(datetime.now(SHANGHAI), ctx.calendar)
    years = await CalendarYear.all().order_by("year").values_list("year", flat=True)
    overrides = [
        {"day": o.day.isoformat(), "is_workday": o.is_workday, "note": o.note}
        for o in await CalendarOverride.all().order_by("day")
    ]
    return sc.CalendarOut(**status, entered_years=list(years), overrides=overrides)


DAY_PARAM = {"day": {"type": "string", "format": "date", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}}
YEAR_PARAM = {"year": {"type": "integer", "minimum": 2000, "maximum": 2100}}


@api.add("PUT", "/api/calendar/days/{day}", "设置某日是否为工作日", body=sc.CalendarDayIn, path_params=DAY_PARAM, roles=frozenset({ADMIN}), tag="admin")
async def put_calendar_day(call: Call):
    try:
        day = date.fromisoformat(call.path["day"])
    except ValueError:
        raise InvalidInput("日期格式应为 YYYY-MM-DD", field="day") from None
    await set_override(day, call.body.is_workday, call.body.note)
    call.state.sla.invalidate()
    return {"day": day.isoformat(), "is_workday": call.body.is_workday}


@api.add("POST", "/api/calendar/years/{year}", "确认某年节假日已全部录入", path_params=YEAR_PARAM, roles=frozenset({ADMIN}), tag="admin")
async def enter_calendar_year(call: Call):
    try:
        year = int(call.path["year"])
    except ValueError:
        raise InvalidInput("年份格式错误", field="year") from None
    if not 2000 <= year <= 2100:
        raise InvalidInput("年份超出范围", field="year")
    await mark_year_entered(year, call.actor)
    call.state.sla.invalidate()
    return {"year": year}


@api.add("POST", "/api/calendar/recompute", "按新日历重算临时时限", response=sc.RecomputeOut, roles=frozenset({ADMIN}), tag="admin")
async def recompute(call: Call):
    call.state.sla.invalidate()
    n = await recompute_provisional(call.actor, await call.state.sla.get())
    return sc.RecomputeOut(recomputed=n)


@api.add("GET", "/api/sla/policies", "时限规则", response=sc.PolicyOut, response_list=True, tag="admin")
async def sla_policies(call: Call):
    ctx = await call.state.sla.get()
    return [
        sc.PolicyOut(kind=p.kind, label=p.label, sign=str(p.sign), contact=str(p.contact) if p.contact else None, reply=str(p.reply))
        for p in ctx.policies.values()
    ]


# The routing and outbox endpoints live in their own modules but belong to this
# registry: importing them here means anyone holding ``api`` sees (and documents) them all.
from hotline.web import (  # noqa: E402,F401
    api_console,  # noqa: E402,F401
    api_outbox,
    api_routing,
    twilio_voice,  # noqa: E402,F401
)
from hotline.web import partners as _partners  # noqa: E402,F401
