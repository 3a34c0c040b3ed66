"""Server-rendered pages: login, the case list, a case's record and the partner directory.

Beyond logging in and out, pages only read. Every change a page offers is a
``data-action`` form that ``console.js`` posts to the JSON API, so the page
and an integration pass the same role, state and CSRF checks; a page shows a
form only when that API would accept it from this user.
"""

from __future__ import annotations

import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from cases import states
from cases.actors import ADMIN, CENTRE_ROLES, ROLES
from cases.errors import NotFound
from cases.lifecycle import TRANSITIONS
from cases.models import Case, CaseEvent, Handoff, PartnerHotline, Unit
from cases.sla import SHANGHAI
from hotline import partners as partner_core
from hotline.auth import Throttled, actor_for, authenticate
from hotline.models import CallLog
from hotline.web.framework import ApiError
from hotline.web.security import check_csrf, client_ip, csrf_token, session_user, start_session
from routing.models import RoutingDecision

templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))
templates.env.globals["STATUS_LABELS"] = states.LABELS
templates.env.globals["tz"] = SHANGHAI


async def login_page(request: Request) -> Response:
    error, status = "", 200
    if request.method == "POST":
        form = await request.form()
        try:
            check_csrf(request, form.get("csrf_token"))
            user = await authenticate(str(form.get("username", ""))[:64], str(form.get("password", ""))[:128], client_ip(request))
        except ApiError:
            user, error, status = None, "页面已过期，请重新提交", 403
        except Throttled:
            user, error, status = None, "登录失败次数过多，请15分钟后再试", 429
        if user is not None:
            start_session(request, user)
            return RedirectResponse("/", status_code=303)
        if not error:
            error, status = "用户名或密码错误", 401
    return templates.TemplateResponse(
        request, "login.html", {"csrf_token": csrf_token(request), "error": error}, status_code=status
    )


async def logout(request: Request) -> Response:
    form = await request.form()
    try:
        check_csrf(request, form.get("csrf_token"))
    except ApiError:
        return RedirectResponse("/", status_code=303)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


async def _page_actor(request: Request):
    user = await session_user(request)
    if user is None:
        return None, None
    return user, await actor_for(user)


async def case_list(request: Request) -> Response:
    # Imported here: the API module builds its routes at import time.
    from hotline.web.api import search_cases_for

    user, actor = await _page_actor(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    q = request.query_params.get("q", "").replace("\x00", "")[:100].strip()
    result = await search_cases_for(actor, q=q or None)
    return templates.TemplateResponse(
        request, "cases.html", {"user": user, "result": result, "q": q, "csrf_token": csrf_token(request)}
    )


async def case_page(request: Request) -> Response:
    from hotline.web.api import case_out, visible_case

    user, actor = await _page_actor(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    try:
        case = await visible_case(actor, request.path_params["number"])
    except NotFound:
        return templates.TemplateResponse(
            request, "not_found.html", {"user": user, "csrf_token": csrf_token(request)}, status_code=404
        )
    events = await CaseEvent.filter(case_id=case.id).order_by("id")
    routing = None
    if actor.sees_all_cases:
        # The dispatcher decides with routing's suggestions and the words behind them in view.
        routing = await RoutingDecision.filter(case_id=case.id).order_by("-id").first()
    units = dict(await Unit.all().values_list("id", "name")) if routing else {}
    return templates.TemplateResponse(
        request,
        "case.html",
        {
            "user": user,
            "case": await case_out(case, actor),
            "events": events,
            "routing": routing,
            "units": units,
            "csrf_token": csrf_token(request),
            **await _partner_sections(case, actor),
        },
    )


# ---- hand-offs to partner hotlines and the case's calls (centre only) ----------------------

HANDOFF_DIRECTION_LABELS = {"out": "转出", "in": "转入"}
CALL_DIRECTION_LABELS = {"inbound": "呼入", "outbound": "呼出"}
CALL_PURPOSE_LABELS = {
    "intake": "来电反映", "lookup": "查询进度", "voicemail": "电话留言", "transfer": "转人工坐席",
    "bridge": "保密外呼", "survey": "语音回访", "survey_sms": "短信回访",
}
CALL_STATUS_LABELS = {
    "queued": "排队中", "initiated": "呼叫中", "ringing": "振铃中", "in-progress": "通话中",
    "completed": "已结束", "busy": "占线", "failed": "呼叫失败", "no-answer": "无人接听", "canceled": "已取消",
    # Survey SMS answers are logged beside the calls, with what became of them.
    "recorded": "已记录回访", "rehandle": "已转重办", "unparsed": "无法识别", "no_survey": "无待回访",
}
# What POST /api/cases/{number}/transfer-call accepts as the call to move.
LIVE_CALL_SID = re.compile(r"CA[0-9a-f]{32}")


def _may(action: str, case: Case, role: str) -> bool:
    t = TRANSITIONS[action]
    return case.status in t.sources and role in t.roles


def api_roles(method: str, path: str) -> frozenset[str]:
    """The roles the JSON API grants for an endpoint, so a page never offers what it would refuse."""
    from hotline.web.api import api

    for ep in api.endpoints:
        if ep.method == method and ep.path == path:
            return ep.roles if ep.roles is not None else frozenset(ROLES)
    return frozenset()  # not registered: offer nothing


async def _partner_sections(case: Case, actor) -> dict:
    # Units never see where the centre handed a case or who phoned about it.
    if actor.role not in CENTRE_ROLES:
        return {"centre_view": False}
    handoffs = await Handoff.filter(case_id=case.id).select_related("partner").order_by("id")
    ctx = {
        "centre_view": True,
        "handoffs": handoffs,
        "handoff_labels": partner_core.STATUS_LABELS,
        "handoff_directions": HANDOFF_DIRECTION_LABELS,
        "handoff_due": case.handoff_due,
        "can_handoff": _may("handoff", case, actor.role),
        "can_confirm": _may("confirm_handoff", case, actor.role),
        "can_finish": _may("finish_handoff", case, actor.role),
        "can_retry": actor.role in api_roles("POST", "/api/handoffs/{handoff_id}/retry"),
        "calls": await CallLog.filter(case_id=case.id).order_by("started_at", "id"),
        "call_directions": CALL_DIRECTION_LABELS,
        "call_purposes": CALL_PURPOSE_LABELS,
        "call_statuses": CALL_STATUS_LABELS,
        "partners": [],
        "live_call_sid": "",
    }
    if ctx["can_handoff"]:
        ctx["partners"] = await PartnerHotline.filter(is_active=True).order_by("code")
        ctx["live_call_sid"] = await _live_call_sid(actor.user_id)
    return ctx


async def _live_call_sid(user_id: int | None) -> str:
    """The citizen's call this agent is on now, which 话务直转 would move; "" when none."""
    from hotline.channels.voice import current_call

    found = await current_call(user_id) if user_id is not None else None
    if found is None:
        return ""
    sid = found[1].call_sid
    return sid if LIVE_CALL_SID.fullmatch(sid) else ""


# ---- the partner directory ------------------------------------------------------------------


async def partners_page(request: Request) -> Response:
    user, _ = await _page_actor(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    context = {"user": user, "csrf_token": csrf_token(request)}
    if user.role not in api_roles("GET", "/api/partners"):
        return templates.TemplateResponse(request, "partners.html", {**context, "forbidden": True}, status_code=403)
    partners = await PartnerHotline.all().order_by("code")
    return templates.TemplateResponse(request, "partners.html", {
        **context,
        "partners": partners,
        # Whether each partner's secret variable is set here; its value never reaches a page.
        "secret_set": {p.code: partner_core.secret_for(p) is not None for p in partners},
        "can_add": user.role in api_roles("POST", "/api/partners"),
        "can_edit": user.role in api_roles("PUT", "/api/partners/{code}"),
        "patterns": {
            # The API's own patterns, without anchors: HTML anchors them itself.
            "code": partner_core.CODE_PATTERN.strip("^$"),
            "phone": partner_core.PHONE_PATTERN.strip("^$"),
            "secret_env": partner_core.SECRET_ENV_PATTERN.strip("^$"),
        },
    })


async def outbox_page(request: Request) -> Response:
    from hotline.outbox import STATUS_LABELS
    from hotline.web.api_outbox import list_notifications

    user, _ = await _page_actor(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    context = {"user": user, "csrf_token": csrf_token(request), "statuses": STATUS_LABELS}
    if user.role != ADMIN:
        return templates.TemplateResponse(request, "outbox.html", {**context, "forbidden": True}, status_code=403)
    # A page, not the API: an unknown filter or page number shows the list rather than an error.
    status = request.query_params.get("status", "")
    status = status if status in STATUS_LABELS else ""
    raw_page = request.query_params.get("page", "1")
    page = int(raw_page) if re.fullmatch(r"[1-9][0-9]{0,4}", raw_page) else 1
    result = await list_notifications(status or None, page)
    pages = max(1, -(-result.total // result.per_page))
    return templates.TemplateResponse(
        request, "outbox.html", {**context, "result": result, "status": status, "page": page, "pages": pages}
    )


def routes() -> list[Route]:
    return [
        Route("/login", login_page, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", case_list),
        Route("/cases/{number}", case_page),
        Route("/partners", partners_page),
        Route("/admin/outbox", outbox_page),
    ]
