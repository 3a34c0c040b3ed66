"""The working screens: the agent console, the dispatcher queue and the handler workbench.

Pages render the state; every change goes through the JSON API from the
page's script (session cookie + X-CSRF-Token), the same endpoints and checks
any integration uses.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from tortoise.expressions import Q, Subquery

from cases import states
from cases.actors import AGENT, DISPATCHER, HANDLER, LEADER
from cases.models import Case, CaseAssignment, CaseEvent, Unit
from cases.payloads import RETURN_REASON_LABELS
from cases.sla import SHANGHAI
from cases.visibility import caller_view, visible_cases
from hotline.web.api import CASE_NUMBER
from hotline.web.pages import _page_actor, templates
from hotline.web.security import csrf_token
from routing.models import RoutingDecision

REQUEST_TYPE_LABELS = {
    "consult": "咨询", "help": "求助", "complaint": "投诉",
    "report": "举报", "suggestion": "建议", "praise": "表扬",
}
LIGHT_LABELS = {"green": "绿", "yellow": "黄", "red": "红"}
LIGHT_TEXT = {"green": "正常", "yellow": "临近期限", "red": "已超期"}
ASSIGNMENT_STATUS_LABELS = {"dispatched": "待签收", "signed": "已签收", "replied": "已答复", "returned": "已退回"}
# Queue rows without a recorded routing decision get a live one (about 2 ms
# each), so a page holds few enough for that to stay quick.
PER_PAGE = 50
QUEUE_LIMIT = 200

templates.env.globals.setdefault("LIGHT_LABELS", LIGHT_LABELS)
templates.env.globals.setdefault("LIGHT_TEXT", LIGHT_TEXT)
templates.env.globals.setdefault("REQUEST_TYPE_LABELS", REQUEST_TYPE_LABELS)


def _when(dt: datetime | None) -> str:
    return dt.astimezone(SHANGHAI).strftime("%m-%d %H:%M") if dt else ""


templates.env.filters.setdefault("when", _when)


async def _gate(request: Request, roles: frozenset[str], template: str):
    """The user, or the response to send instead (login redirect or a 403 page)."""
    user, actor = await _page_actor(request)
    if user is None:
        return None, None, RedirectResponse("/login", status_code=303)
    if user.role not in roles:
        response = templates.TemplateResponse(
            request, template, {"user": user, "csrf_token": csrf_token(request), "forbidden": True}, status_code=403
        )
        return user, actor, response
    return user, actor, None


# ---- agent console ------------------------------------------------------------------------


async def console_page(request: Request) -> Response:
    user, actor, refused = await _gate(request, frozenset({AGENT, DISPATCHER}), "console.html")
    if refused:
        return refused
    ctx = await request.app.state.sla.get()
    urgencies = [(k, p.label) for k, p in ctx.policies.items() if not k.startswith("window_")]
    units = await Unit.filter(is_active=True).exclude(kind="centre").order_by("kind", "id").values("id", "name")
    phone = request.query_params.get("phone", "")
    phone = phone if phone[:1] in "+0123456789" and phone.replace("+", "").replace("-", "").isdigit() else ""
    return templates.TemplateResponse(request, "console.html", {
        "user": user,
        "csrf_token": csrf_token(request),
        "request_types": REQUEST_TYPE_LABELS,
        "urgencies": urgencies,
        "units": units,
        "phone": phone[:21],
        # Only with a phone line is there a call in progress to follow.
        "takes_calls": bool(request.app.state.settings.twilio_account_sid),
    })


# ---- dispatcher queue ---------------------------------------------------------------------


async def queue_page(request: Request) -> Response:
    user, actor, refused = await _gate(request, frozenset({DISPATCHER, LEADER}), "queue.html")
    if refused:
        return refused
    q = request.query_params.get("q", "").replace("\x00", "")[:100].strip()
    raw_page = request.query_params.get("page", "1")
    page = int(raw_page) if re.fullmatch(r"[1-9][0-9]{0,4}", raw_page) else 1

    def matching(qs):
        if not q:
            return qs
        text = Q(title__icontains=q) | Q(content__icontains=q) | Q(address__icontains=q)
        return qs.filter(text | Q(number=q)) if CASE_NUMBER.fullmatch(q) else qs.filter(text)

    # Oldest acceptance deadline first: the case that has waited longest is due first.
    waiting_qs = matching(Case.filter(status__in=[states.RECEIVED, states.PENDING_DISPATCH]))
    total = await waiting_qs.count()
    pages = max(1, -(-total // PER_PAGE))
    page = min(page, pages)
    waiting = await waiting_qs.order_by("accept_due", "id").offset((page - 1) * PER_PAGE).limit(PER_PAGE)
    returns = await matching(Case.filter(status=states.RETURN_REQUESTED)).order_by("id").limit(QUEUE_LIMIT)
    extensions = await (
        matching(Case.filter(status=states.IN_PROGRESS, extension_requested_days__isnull=False))
        .order_by("extension_due", "id").limit(QUEUE_LIMIT)
    )
    units = dict(await Unit.all().values_list("id", "name"))
    decisions: dict[int, dict] = {}
    for row in await RoutingDecision.filter(case_id__in=[c.id for c in waiting]).order_by("id"):
        decisions[row.case_id] = {  # the latest decision wins
            "category": row.category, "confidence": row.confidence, "reason": row.reason,
            "lead_unit_id": row.lead_unit_id, "co_unit_ids": list(row.co_unit_ids or []),
            "alternatives": row.alternatives or [], "live": False,
        }
    routing = request.app.state.routing
    for case in waiting:
        if case.id in decisions:
            continue
        d, _, _ = await routing.suggest(
            title=case.title, content=case.content, address=case.address, request_type=case.request_type,
            district_code=case.district_code, street_code=case.street_code,
        )
        decisions[case.id] = {
            "category": d.category, "confidence": d.confidence, "reason": d.reason,
            "lead_unit_id": d.route.lead_unit_id, "co_unit_ids": list(d.route.co_unit_ids),
            "alternatives": [a.to_dict() for a in d.alternatives], "live": True,
        }
    # The handler's reason for a return, as written with the request.
    notes: dict[int, str] = {}
    for e in await CaseEvent.filter(case_id__in=[c.id for c in returns], action="request_return").order_by("id"):
        notes[e.case_id] = (e.payload or {}).get("note", "")
    return templates.TemplateResponse(request, "queue.html", {
        "user": user,
        "csrf_token": csrf_token(request),
        "can_act": user.role == DISPATCHER,
        "waiting": [_row(actor, c) for c in waiting],
        "total": total,
        "page": page,
        "pages": pages,
        "q": q,
        "returns": [_row(actor, c) for c in returns],
        "extensions": [_row(actor, c) for c in extensions],
        "decisions": decisions,
        "notes": notes,
        "units": units,
        "unit_choices": [(i, n) for i, n in sorted(units.items())],
        "reason_labels": RETURN_REASON_LABELS,
    })


def _row(actor, case: Case) -> dict:
    return {"case": case, **caller_view(actor, case)}


# ---- handler workbench --------------------------------------------------------------------


def deadline_of(case: Case, assignment: CaseAssignment) -> tuple[str, datetime | None]:
    """The deadline this unit is working to now: signing until it has signed, then the reply."""
    if assignment.status == "dispatched":
        return "签收", assignment.sign_due or case.sign_due
    return "答复", assignment.reply_due or case.reply_due


def time_left(due: datetime | None, now: datetime) -> str:
    """剩余 2天3小时 / 已超期 5小时: the deadline as a handler reads it at a glance."""
    if due is None:
        return ""
    seconds = int((due - now).total_seconds())
    late, seconds = seconds < 0, abs(seconds)
    days, hours, minutes = seconds // 86400, seconds % 86400 // 3600, seconds % 3600 // 60
    if days:
        span = f"{days}天{hours}小时" if hours else f"{days}天"
    elif hours:
        span = f"{hours}小时{minutes}分钟" if minutes else f"{hours}小时"
    else:
        span = f"{max(minutes, 1)}分钟"
    return f"已超期 {span}" if late else f"剩余 {span}"


async def workbench_rows(actor) -> list[dict]:
    """The unit's own active work, nearest deadline first.

    Only cases on which the handler's own unit holds an active, unfinished
    assignment: those of overseen units are visible elsewhere but cannot be
    acted on, so they would only crowd the list.
    """
    own = CaseAssignment.filter(unit_id=actor.unit_id, active=True, status__in=["dispatched", "signed"])
    cases = await (
        visible_cases(actor)
        .filter(id__in=Subquery(own.values("case_id")), status__in=list(states.WITH_UNIT))
        .order_by("next_due_at", "id")
        .limit(QUEUE_LIMIT)
    )
    assignments = {a.case_id: a for a in await own.filter(case_id__in=[c.id for c in cases])}
    now = datetime.now(timezone.utc)
    rows = []
    for case in cases:
        a = assignments.get(case.id)
        if a is None:
            continue
        stage, due = deadline_of(case, a)
        lead = a.role == "lead"
        signed = a.status == "signed"
        rows.append({
            "case": case,
            "assignment": a,
            "role_label": "主办" if lead else "协办",
            "assignment_label": ASSIGNMENT_STATUS_LABELS.get(a.status, a.status),
            "stage": stage,
            "due": due,
            "left": time_left(due, now),
            "can_sign": not signed and case.status in (states.DISPATCHED, states.IN_PROGRESS),
            "can_work": signed and case.status == states.IN_PROGRESS,
            "can_return": lead and case.status in (states.DISPATCHED, states.IN_PROGRESS)
            and case.return_until is not None and now <= case.return_until,
            "can_extend": lead and signed and case.status == states.IN_PROGRESS
            and not case.extension_requested_days and case.reply_due is not None and now < case.reply_due,
            **caller_view(actor, case),
        })
    far = datetime.max.replace(tzinfo=timezone.utc)
    rows.sort(key=lambda r: (r["due"] or far, r["case"].next_due_at or far, r["case"].id))
    return rows


async def workbench_page(request: Request) -> Response:
    user, actor, refused = await _gate(request, frozenset({HANDLER}), "workbench.html")
    if refused:
        return refused
    unit = await Unit.get_or_none(id=user.unit_id)
    return templates.TemplateResponse(request, "workbench.html", {
        "user": user,
        "csrf_token": csrf_token(request),
        "unit": unit,
        "rows": await workbench_rows(actor),
        "reason_labels": RETURN_REASON_LABELS,
    })


def routes() -> list[Route]:
    return [
        Route("/console", console_page),
        Route("/queue", queue_page),
        Route("/workbench", workbench_page),
    ]
