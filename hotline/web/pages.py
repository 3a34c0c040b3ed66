"""Server-rendered pages: login, the case list and a case's record."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from cases import states
from cases.actors import ADMIN
from cases.errors import NotFound
from cases.models import CaseEvent, Unit
from cases.sla import SHANGHAI
from hotline.auth import Throttled, actor_for, authenticate
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
        },
    )


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
        Route("/admin/outbox", outbox_page),
    ]
