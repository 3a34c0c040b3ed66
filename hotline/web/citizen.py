"""Citizens' own pages: the web form, the 办不成事 window, progress look-up and rating.

Nobody logs in here. A case number plus its query code is the citizen's only
key, so a wrong code looks exactly like a wrong number, failed look-ups are
rate limited, and no page ever shows the caller's own details back: whoever
holds the code sees the progress and the reply, nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError
from starlette.background import BackgroundTask
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cases import states
from cases.actors import SYSTEM_ROLE, Actor
from cases.errors import CaseError
from cases.intake import create_case
from cases.lifecycle import perform
from cases.models import Case, CaseEvent
from cases.payloads import NewCase
from cases.sla import SHANGHAI
from hotline.web.framework import ApiError
from hotline.web.pages import templates
from hotline.web.ratelimit import RateLimiter
from hotline.web.security import check_csrf, client_ip, csrf_token

# Each public entry names itself in the case history.
WEB_ACTOR = Actor(user_id=None, name="市民（网上诉求）", role=SYSTEM_ROLE)
WINDOW_ACTOR = Actor(user_id=None, name="市民（办不成事反映）", role=SYSTEM_ROLE)
RATING_ACTOR = Actor(user_id=None, name="市民（网上评价）", role=SYSTEM_ROLE)

REQUEST_TYPES = [
    ("consult", "咨询"),
    ("help", "求助"),
    ("complaint", "投诉"),
    ("report", "举报"),
    ("suggestion", "建议"),
    ("praise", "表扬"),
]
RESOLVED = [("resolved", "已解决"), ("partly", "部分解决"), ("unresolved", "未解决")]
SATISFACTION = [("satisfied", "满意"), ("basically", "基本满意"), ("unsatisfied", "不满意")]
CHANNEL_LABELS = {
    "phone": "电话", "web": "网上诉求", "window": "办不成事反映", "agent": "话务员登记",
    "duty_day": "领导接听日", "partner": "外省市热线转办", "sms": "短信",
}
TRANSFER_LABELS = {"110": "110", "119": "119", "120": "120", "122": "122"}

NUMBER_RE = re.compile(r"[0-9]{8}-[0-9]{6}")
CODE_RE = re.compile(r"[A-Z0-9]{6}")
FORM_ID_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
MOBILE_RE = re.compile(r"(?:\+?86)?(1[3-9][0-9]{9})")
# 010 and 02x are the only three-digit area codes; every other one has four digits.
LANDLINE_RE = re.compile(r"(010|02[0-9]|0[3-9][0-9]{2})-?([2-9][0-9]{6,7})(?:-([0-9]{1,6}))?")
# Every control character except line breaks and tabs: PostgreSQL refuses NUL, the rest is noise.
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

CONTENT_MIN, CONTENT_MAX = 5, 4000
EXPIRED = "页面已过期，请重新提交（您填写的内容已保留）"


# ---- input ------------------------------------------------------------------------------


def _clean(value: Any) -> str:
    if not isinstance(value, str):  # an uploaded file where text belongs
        return ""
    return CONTROL_RE.sub("", value.replace("\r\n", "\n").replace("\r", "\n")).strip()


def normalize_phone(raw: str) -> str | None:
    """A mainland mobile (11 digits) or landline (区号-号码[-分机]) number, or None.

    NFKC first: phones type full-width digits and dashes as often as ASCII ones.
    """
    value = unicodedata.normalize("NFKC", raw)
    value = re.sub(r"[\s()]", "", value).replace("—", "-").replace("－", "-")
    mobile = MOBILE_RE.fullmatch(value.replace("-", ""))
    if mobile:
        return mobile.group(1)
    landline = LANDLINE_RE.fullmatch(value)
    if landline:
        area, local, ext = landline.groups()
        return f"{area}-{local}" + (f"-{ext}" if ext else "")
    return None


class Fields:
    """The cleaned form values and the per-field messages of one submission."""

    def __init__(self, form: FormData | None):
        self.form = form
        self.values: dict[str, str] = {}
        self.errors: dict[str, str] = {}

    def text(self, name: str, label: str, *, required: bool = False, max_len: int, min_len: int = 0) -> str:
        value = _clean(self.form.get(name)) if self.form is not None else ""
        self.values[name] = value
        if not value:
            if required:
                self.errors[name] = f"请填写{label}"
        elif len(value) > max_len:
            self.errors[name] = f"{label}不能超过{max_len}字（当前{len(value)}字）"
        elif len(value) < min_len:
            self.errors[name] = f"{label}太短，请至少写{min_len}个字"
        return value

    def choice(self, name: str, label: str, options: list[tuple[str, str]]) -> str:
        value = _clean(self.form.get(name)) if self.form is not None else ""
        self.values[name] = value
        if value not in dict(options):
            self.errors[name] = f"请选择{label}"
            return ""
        return value

    def phone(self, name: str = "phone") -> str:
        value = self.text(name, "联系电话", required=True, max_len=32)
        if value and name not in self.errors:
            normalized = normalize_phone(value)
            if normalized is None:
                self.errors[name] = "请填写正确的手机号码（11位）或固定电话（区号-号码，如 0731-88888888）"
            else:
                return normalized
        return ""

    def flag(self, name: str) -> bool:
        checked = self.form is not None and _clean(self.form.get(name)) in ("1", "on", "yes", "true")
        self.values[name] = "1" if checked else ""
        return checked


async def _read_form(request: Request) -> FormData | None:
    """The posted form, or None when it is larger than the body limit allows."""
    try:
        return await request.form()
    except HTTPException as exc:
        if exc.status_code == 413:
            return None
        raise


# ---- rate limits ------------------------------------------------------------------------


@dataclass
class Limits:
    submit: RateLimiter
    lookup: RateLimiter


def _limits(request: Request) -> Limits:
    # The counts live in the database, shared by every process; the app keeps only the settings.
    state = request.app.state
    limits = getattr(state, "citizen_limits", None)
    if limits is None:
        s = state.settings
        limits = Limits(
            submit=RateLimiter("submit", s.citizen_submit_limit, s.citizen_rate_window),
            lookup=RateLimiter("lookup", s.citizen_lookup_limit, s.citizen_rate_window),
        )
        state.citizen_limits = limits
    return limits


def _minutes(request: Request) -> int:
    return max(1, round(request.app.state.settings.citizen_rate_window / 60))


def _too_many_submissions(request: Request) -> str:
    return f"提交过于频繁：同一网络或同一电话号码{_minutes(request)}分钟内最多提交{request.app.state.settings.citizen_submit_limit}件诉求，请稍后再试。紧急情况请直接拨打12345。"


def _too_many_lookups(request: Request) -> str:
    return f"查询失败次数过多，请{_minutes(request)}分钟后再试。"


# ---- rendering --------------------------------------------------------------------------


def _render(request: Request, name: str, context: dict, status: int = 200, **kwargs) -> Response:
    response = templates.TemplateResponse(
        request, name, {"csrf_token": csrf_token(request), **context}, status_code=status, **kwargs
    )
    # Pages carrying query codes or personal input stay out of shared caches and the back-forward cache.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _message(request: Request, title: str, message: str, status: int) -> Response:
    return _render(request, "citizen_message.html", {"title": title, "message": message}, status)


def _form_id(form: FormData | None) -> str:
    supplied = _clean(form.get("form_id")) if form is not None else ""
    return supplied if FORM_ID_RE.fullmatch(supplied) else secrets.token_urlsafe(16)


def _source_id(request: Request, kind: str, form_id: str) -> str:
    """One form, one case: a double click or a refreshed result page finds the first case.

    Bound to the session's CSRF secret, so nobody else can replay a form id
    into someone's case number and query code.
    """
    digest = hashlib.sha256(f"{csrf_token(request)}:{form_id}".encode()).hexdigest()[:40]
    return f"{kind}:{digest}"


async def _intake(request: Request, fields: Fields, data: dict, actor: Actor, template: str, context: dict) -> Response:
    """Validate, rate limit, create and answer; shared by the web form and the window."""
    form_id = context["form_id"]
    source_id = _source_id(request, data["channel"], form_id)
    existing = await Case.get_or_none(source_id=source_id)
    if existing is not None:
        return _render(request, "citizen_result.html", {"case": existing})
    if fields.errors:
        return _render(request, template, {**context, "errors": fields.errors}, 400)
    try:
        new = NewCase.model_validate({**data, "source_id": source_id})
    except ValidationError:
        # The checks above mirror NewCase; reaching here means they drifted apart.
        return _render(request, template, {**context, "error": "提交的内容格式有误，请检查后重试"}, 400)
    ip_key, phone_key = f"ip:{client_ip(request)}", f"phone:{new.caller_phone}"
    if not await _limits(request).submit.take(ip_key, phone_key):
        return _render(request, template, {**context, "error": _too_many_submissions(request)}, 429)
    settings, state = request.app.state.settings, request.app.state
    case, created = await create_case(new, actor, ladder=state.sla.ladder, route=settings.auto_route)
    background = None
    if created and settings.auto_route:
        # Routing runs after the page is sent; a case it misses is routed by the next sweep.
        background = BackgroundTask(state.jobs.route_soon, case)
    return _render(request, "citizen_result.html", {"case": case}, background=background)


# ---- 诉求提交 ---------------------------------------------------------------------------


async def submit(request: Request) -> Response:
    context: dict[str, Any] = {"request_types": REQUEST_TYPES, "values": {}, "errors": {}}
    if request.method == "GET":
        return _render(request, "citizen_submit.html", {**context, "form_id": _form_id(None)})
    form = await _read_form(request)
    context["form_id"] = _form_id(form)
    if form is None:
        return _render(request, "citizen_submit.html", {**context, "error": _too_large()}, 413)
    f = Fields(form)
    request_type = f.choice("request_type", "诉求类型", REQUEST_TYPES)
    title = f.text("title", "标题", max_len=200)
    content = f.text("content", "诉求内容", required=True, max_len=CONTENT_MAX, min_len=CONTENT_MIN)
    address = f.text("address", "事发地址", max_len=300)
    phone = f.phone()
    name = f.text("name", "姓名", max_len=64)
    confidential = f.flag("confidential")
    context["values"] = f.values
    try:
        check_csrf(request, _clean(form.get("csrf_token")))
    except ApiError:
        return _render(request, "citizen_submit.html", {**context, "error": EXPIRED}, 403)
    data = {
        "channel": "web",
        "request_type": request_type,
        "title": title,
        "content": content,
        "address": address,
        "caller_phone": phone,
        "caller_name": name,
        "confidential": confidential,
        # A consultation sent to a unit runs on the consultation clock.
        "urgency": "consult" if request_type == "consult" else "general",
    }
    return await _intake(request, f, data, WEB_ACTOR, "citizen_submit.html", context)


def _too_large() -> str:
    return f"提交的内容过长。诉求内容请控制在{CONTENT_MAX}字以内，其他各项请按提示长度填写。"


# ---- 办不成事反映 -----------------------------------------------------------------------


def _window_content(matter: str, place: str, when: str, refused: str, content: str) -> str:
    lines = [f"办理事项：{matter}", f"办理地点/部门：{place}", f"办理时间：{when}", f"遇到的问题：{refused}"]
    if content:
        lines.append(f"详细情况：{content}")
    return "\n".join(lines)


async def window(request: Request) -> Response:
    context: dict[str, Any] = {"values": {}, "errors": {}, "today": datetime.now(SHANGHAI).date().isoformat()}
    if request.method == "GET":
        return _render(request, "citizen_window.html", {**context, "form_id": _form_id(None)})
    form = await _read_form(request)
    context["form_id"] = _form_id(form)
    if form is None:
        return _render(request, "citizen_window.html", {**context, "error": _too_large()}, 413)
    f = Fields(form)
    matter = f.text("matter", "想办的事项", required=True, max_len=200, min_len=2)
    place = f.text("place", "办理地点或部门", required=True, max_len=200, min_len=2)
    when = f.text("when", "办理时间", required=True, max_len=10)
    if when and "when" not in f.errors:
        try:
            day = date.fromisoformat(when)
        except ValueError:
            f.errors["when"] = "请按“年-月-日”填写办理时间，例如 2025-11-20"
        else:
            if day > datetime.now(SHANGHAI).date():
                f.errors["when"] = "办理时间不能晚于今天"
            elif day.year < 2000:
                f.errors["when"] = "请填写正确的办理时间"
    refused = f.text("refused", "遇到的问题", required=True, max_len=1000, min_len=CONTENT_MIN)
    content = f.text("content", "详细情况", max_len=2000)
    phone = f.phone()
    name = f.text("name", "姓名", max_len=64)
    context["values"] = f.values
    try:
        check_csrf(request, _clean(form.get("csrf_token")))
    except ApiError:
        return _render(request, "citizen_window.html", {**context, "error": EXPIRED}, 403)
    data = {
        "channel": "window",
        "request_type": "complaint",
        "title": f"办不成事：{matter}"[:200],
        "content": _window_content(matter, place, when, refused, content),
        # The place is where the matter failed: it tells routing whose territory it is.
        "address": place[:300],
        "caller_phone": phone,
        "caller_name": name,
        # Simple until the dispatcher says otherwise (complex / special / a reasoned no).
        "urgency": "window_simple",
        "details": {"window": {"matter": matter, "place": place, "when": when, "refused": refused}},
    }
    return await _intake(request, f, data, WINDOW_ACTOR, "citizen_window.html", context)


# ---- 进度查询 ---------------------------------------------------------------------------


def _key(number: str, code: str) -> tuple[str, str]:
    number = unicodedata.normalize("NFKC", _clean(number)).replace(" ", "")
    code = unicodedata.normalize("NFKC", _clean(code)).replace(" ", "").upper()
    return number[:20], code[:12]


async def _find(request: Request, number: str, code: str) -> tuple[Case | None, str]:
    """The case these keys open, or None and the message to show (the same for every failure)."""
    limiter = _limits(request).lookup
    # Counted before looking and given back when the keys open a case: only failures
    # count, yet a burst of parallel guesses cannot all pass one check.
    taken = await limiter.take(f"ip:{client_ip(request)}")
    if taken is None:
        return None, "too_many"
    case = None
    if NUMBER_RE.fullmatch(number) and CODE_RE.fullmatch(code):
        case = await Case.get_or_none(number=number)
    # Compared even without a case, so a wrong number costs as long as a wrong code.
    if not hmac.compare_digest((case.query_code if case else "-").encode(), code.encode()) or case is None:
        return None, "not_found"
    await limiter.give_back(taken)
    return case, ""


NOT_FOUND = "未查询到工单，请核对工单号和查询码后重试。"


def _lookup_failed(request: Request, reason: str, template: str, context: dict) -> Response:
    if reason == "too_many":
        return _render(request, template, {**context, "error": _too_many_lookups(request)}, 429)
    return _render(request, template, {**context, "error": NOT_FOUND}, 404)


def _local(at: datetime | None) -> str:
    return at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") if at else ""


async def public_view(case: Case) -> dict[str, Any]:
    """What the holder of the query code may see: progress and the answer, no personal data."""
    first = await CaseEvent.filter(
        case_id=case.id, action__in=("accept", "dispatch", "answer_on_spot", "reject", "transfer_out", "handoff")
    ).order_by("id").first()
    accepted_at = first.created_at if first and first.action in ("accept", "dispatch", "answer_on_spot", "handoff") else None
    replied = case.replied_at is not None and case.status != states.REHANDLE_PENDING
    dates = [
        ("提交时间", _local(case.created_at)),
        ("受理时间", _local(accepted_at)),
        ("派单时间", _local(case.dispatched_at)),
        ("答复时间", _local(case.replied_at) if replied else ""),
        ("办结时间", _local(case.closed_at)),
    ]
    notice = ""
    if case.status == states.REJECTED:
        notice = f"不予受理：{case.reply_text}。" + (f"建议您通过以下途径反映：{case.out_of_scope_channel}" if case.out_of_scope_channel else "")
    elif case.status == states.TRANSFERRED_OUT:
        target = case.close_reason.removeprefix("transfer_")
        notice = f"您的诉求已转至{TRANSFER_LABELS[target]}处理。" if target in TRANSFER_LABELS else "您的诉求已转至相关部门处理。"
    elif case.status == states.MERGED:
        notice = "您反映的问题已与相同问题的工单合并办理，办理结果将一并答复。"
    elif case.status == states.REHANDLE_PENDING or (case.status == states.IN_PROGRESS and case.rehandle_count):
        notice = "根据您的评价，工单正在重新办理。"
    elif case.status in (states.HANDOFF_PENDING, states.HANDED_OFF):
        notice = "您的诉求已转交相关省市热线办理，我们将跟踪办理结果。"
    return {
        "number": case.number,
        "status": case.status,
        "status_label": states.LABELS.get(case.status, case.status),
        "request_type": dict(REQUEST_TYPES).get(case.request_type, ""),
        "channel": CHANNEL_LABELS.get(case.channel, ""),
        "dates": [(label, value) for label, value in dates if value],
        "reply": case.reply_text if (replied or case.status == states.CLOSED) else "",
        "notice": notice,
        "can_rate": case.status == states.REPLIED,
    }


async def track(request: Request) -> Response:
    context: dict[str, Any] = {"number": "", "code": ""}
    if request.method == "GET":
        number, _ = _key(request.query_params.get("number", ""), "")
        context["number"] = number if NUMBER_RE.fullmatch(number) else ""
        return _render(request, "citizen_track.html", context)
    form = await _read_form(request)
    if form is None:
        return _render(request, "citizen_track.html", {**context, "error": NOT_FOUND}, 413)
    number, code = _key(form.get("number", ""), form.get("code", ""))
    context.update(number=number, code=code)
    try:
        check_csrf(request, _clean(form.get("csrf_token")))
    except ApiError:
        return _render(request, "citizen_track.html", {**context, "error": EXPIRED}, 403)
    if not number or not code:
        return _render(request, "citizen_track.html", {**context, "error": "请填写工单号和查询码"}, 400)
    case, reason = await _find(request, number, code)
    if case is None:
        return _lookup_failed(request, reason, "citizen_track.html", context)
    return _render(request, "citizen_track.html", {**context, "view": await public_view(case)})


# ---- 评价 -------------------------------------------------------------------------------


async def rate(request: Request) -> Response:
    """GET shows the reply and the questions; only a confirmed POST records anything.

    Mail and chat apps open links to preview them, so a vote in a GET would
    let a link scanner rate the case on the citizen's behalf.
    """
    number = request.path_params["number"]
    form = None
    if request.method == "POST":
        form = await _read_form(request)
        if form is None:
            return _message(request, "评价", "提交的内容过长。", 413)
        raw_code = form.get("code", "")
    else:
        raw_code = request.query_params.get("code", "")
    number, code = _key(number, raw_code)
    base = {"number": number, "code": code, "resolved_options": RESOLVED, "satisfaction_options": SATISFACTION}
    if form is not None:
        try:
            check_csrf(request, _clean(form.get("csrf_token")))
        except ApiError:
            return _message(request, "评价", "页面已过期，请返回评价页面重新提交。", 403)
    case, reason = await _find(request, number, code)
    if case is None:
        if reason == "too_many":
            return _message(request, "评价", _too_many_lookups(request), 429)
        return _message(request, "评价", NOT_FOUND, 404)
    view = await public_view(case)
    if case.status != states.REPLIED:
        note = "该工单已评价，感谢您的反馈。" if case.callback_contacted else ""
        return _message(
            request, "评价",
            note or f"该工单当前状态为「{view['status_label']}」，办理单位答复后才能评价。",
            200 if form is None else 409,
        )
    context = {**base, "view": view, "values": {}, "errors": {}}
    if form is None:
        return _render(request, "citizen_rate.html", context)
    f = Fields(form)
    resolved = f.choice("resolved", "问题是否解决", RESOLVED)
    satisfaction = f.choice("satisfaction", "满意程度", SATISFACTION)
    context.update(values=f.values, errors=f.errors)
    if f.errors:
        return _render(request, "citizen_rate.html", context, 400)
    if _clean(form.get("confirm")) != "yes":
        labels = {"resolved": dict(RESOLVED)[resolved], "satisfaction": dict(SATISFACTION)[satisfaction]}
        return _render(request, "citizen_rate_confirm.html", {**context, "labels": labels})
    try:
        case = await perform(
            number, "record_callback", RATING_ACTOR,
            {"contacted": True, "resolved": resolved, "satisfaction": satisfaction, "note": "市民网上评价"},
            sla_context=await request.app.state.sla.get(),
        )
    except CaseError:
        # Rated a moment ago in another tab, or by the callback team.
        return _message(request, "评价", "该工单刚刚已被评价或状态已变化，无需重复评价。", 409)
    reopened = case.status == states.REHANDLE_PENDING
    return _render(request, "citizen_rate_done.html", {"number": number, "reopened": reopened})


def routes() -> list[Route]:
    return [
        Route("/submit", submit, methods=["GET", "POST"]),
        Route("/window", window, methods=["GET", "POST"]),
        Route("/track", track, methods=["GET", "POST"]),
        Route("/rate/{number}", rate, methods=["GET", "POST"]),
    ]
