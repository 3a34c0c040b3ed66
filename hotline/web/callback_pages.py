"""The manual 回访 screen: agents and dispatchers call citizens back and record the result.

Lists the cases waiting for a callback (已答复待回访) in the order they fall
due, with the unit's reply and the caller's number, masked for confidential
callers until revealed; each reveal is logged like the API's reveal-phone.
Every form posts with the session's CSRF token; results go through the case
core's ``record_callback``.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from cases import states as s
from cases.actors import AGENT, DISPATCHER
from cases.errors import CaseError, InvalidInput
from cases.lifecycle import perform
from cases.models import Case, PhoneReveal, Unit
from cases.visibility import caller_view
from hotline.callbacks import RESOLVED_LABELS, SATISFACTION_LABELS
from hotline.web.framework import ApiError
from hotline.web.pages import _page_actor, templates
from hotline.web.security import check_csrf, csrf_token

ROLES = frozenset({AGENT, DISPATCHER})
PER_PAGE = 50
NUMBER = re.compile(r"^[0-9]{8}-[0-9]{6}$")


async def _render(request: Request, user, actor, *, status: int = 200, error: str = "",
                  revealed: dict[str, str] | None = None, q: str | None = None) -> Response:
    raw = request.query_params.get("page", "1")
    page = int(raw) if re.fullmatch(r"[1-9][0-9]{0,4}", raw) else 1
    waiting = Case.filter(status=s.REPLIED)
    # An agent returning a citizen's call looks the case up by its number or the caller's.
    q = (request.query_params.get("q", "") if q is None else q).strip()[:32]
    if q:
        waiting = waiting.filter(number=q) if NUMBER.match(q) else waiting.filter(caller_phone=q)
    total = await waiting.count()
    cases = await waiting.order_by("callback_due", "id").offset((page - 1) * PER_PAGE).limit(PER_PAGE)
    unit_ids = {c.lead_unit_id for c in cases if c.lead_unit_id}
    units = dict(await Unit.filter(id__in=list(unit_ids)).values_list("id", "name")) if unit_ids else {}
    now = datetime.now(timezone.utc)
    revealed = revealed or {}
    rows = []
    for c in cases:
        caller = caller_view(actor, c)
        rows.append({
            "case": c,
            "unit": units.get(c.lead_unit_id, ""),
            "caller_name": caller["caller_name"],
            "caller_phone": revealed.get(c.number, caller["caller_phone"]),
            "masked": c.confidential and c.number not in revealed,
            "due": c.callback_due is not None and c.callback_due <= now,
        })
    done = request.query_params.get("done", "")
    return templates.TemplateResponse(request, "callbacks.html", {
        "user": user, "csrf_token": csrf_token(request), "rows": rows, "total": total, "page": page, "q": q,
        "pages": max(1, -(-total // PER_PAGE)), "error": error,
        "done": done if NUMBER.match(done) else "",
        "resolved_labels": {k: v for k, v in RESOLVED_LABELS.items() if k != "unreachable"},
        "satisfaction_labels": SATISFACTION_LABELS,
    }, status_code=status)


async def _staff(request: Request):
    user, actor = await _page_actor(request)
    if user is None:
        return None, None, RedirectResponse("/login", status_code=303)
    if actor.role not in ROLES:
        return user, actor, templates.TemplateResponse(
            request, "callbacks.html", {"user": user, "csrf_token": csrf_token(request), "forbidden": True},
            status_code=403)
    return user, actor, None


async def callback_list(request: Request) -> Response:
    user, actor, refused = await _staff(request)
    if refused is not None:
        return refused
    return await _render(request, user, actor)


async def _staff_form(request: Request):
    """The posting agent and the form, or the page refusing them (not staff, bad CSRF token)."""
    user, actor, refused = await _staff(request)
    if refused is not None:
        return user, actor, None, refused
    form = await request.form(max_files=0, max_fields=20)
    try:
        check_csrf(request, form.get("csrf_token"))
    except ApiError as exc:
        return user, actor, form, await _render(request, user, actor, status=403, error=exc.message)
    return user, actor, form, None


async def record(request: Request) -> Response:
    user, actor, form, refused = await _staff_form(request)
    if refused is not None:
        return refused
    number = request.path_params["number"]
    reached = form.get("reached")
    body: dict[str, object] = {"note": str(form.get("note", ""))[:1000]}
    if reached == "yes":
        body.update(contacted=True, resolved=str(form.get("resolved", "")), satisfaction=str(form.get("satisfaction", "")))
    elif reached == "no":
        body["contacted"] = False
    try:
        if reached not in ("yes", "no") or not NUMBER.match(number):
            raise InvalidInput("请选择是否联系上市民")
        await perform(number, "record_callback", actor, body, sla_context=await request.app.state.sla.get())
    except CaseError as exc:
        message = exc.message
        errors = exc.detail.get("errors") if isinstance(exc, InvalidInput) else None
        if errors:
            message = "；".join(e["message"].removeprefix("Value error, ") for e in errors)
        return await _render(request, user, actor, status=exc.status_code, error=f"工单 {number}：{message}",
                             q=number if NUMBER.match(number) else None)
    return RedirectResponse(f"/callbacks?done={number}", status_code=303)


async def reveal(request: Request) -> Response:
    user, actor, form, refused = await _staff_form(request)
    if refused is not None:
        return refused
    number = request.path_params["number"]
    reason = str(form.get("reason", "")).strip()[:200]
    case = await Case.get_or_none(number=number) if NUMBER.match(number) else None
    if case is None:
        return await _render(request, user, actor, status=404, error=f"工单 {number} 不存在")
    if not reason:
        return await _render(request, user, actor, status=422, error="查看保密号码须填写事由", q=number)
    if case.confidential:
        # The same access log as POST /api/cases/{number}/reveal-phone.
        await PhoneReveal.create(case_id=case.id, user_id=user.id, reason=reason)
    return await _render(request, user, actor, revealed={case.number: case.caller_phone}, q=number)


def routes() -> list[Route]:
    return [
        Route("/callbacks", callback_list),
        Route("/callbacks/{number}", record, methods=["POST"]),
        Route("/callbacks/{number}/reveal", reveal, methods=["POST"]),
    ]
