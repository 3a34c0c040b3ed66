"""Partner hotlines (跨省诉求首接责任制): the directory, signed hand-offs out, signed intake in.

A hand-off out starts as a ``Handoff`` row written by the ``handoff``
transition. When the partner has an intake API, :func:`deliver_pending` (run
by every ``tick``) POSTs the case to it, signed with the secret both centres
share, until the partner acknowledges with its own reference; that
acknowledgement is the electronic receipt, so the case moves to 已转办跟踪
(``confirm_handoff``, via "api"). Until then this centre keeps the case, and
its ``handoff`` clock warns, supervises and escalates like any other.

Signing (both directions)::

    X-Hotline-Sender:    the sender's code in the receiver's directory
    X-Hotline-Timestamp: Unix seconds
    X-Hotline-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>

Secrets never live in the database: ``PartnerHotline.secret_env`` names the
environment variable that holds one, and only names starting with
``HOTLINE_PARTNER_`` are accepted, so the directory can never be pointed at
``SECRET_KEY`` or a database password.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import ipaddress
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from cases import states
from cases.actors import SYSTEM, SYSTEM_ROLE, Actor
from cases.errors import CaseError
from cases.intake import create_case
from cases.lifecycle import SlaContext, perform
from cases.models import Case, Handoff, PartnerHotline
from cases.payloads import NewCase

# Hand-offs retry and recover on the same schedule as outbox messages.
from hotline.outbox import BACKOFF_FIRST, BACKOFF_MAX, STUCK_AFTER, backoff  # noqa: F401
from hotline.settings import Settings

log = logging.getLogger("hotline.partners")

SIGNATURE_HEADER = "X-Hotline-Signature"
TIMESTAMP_HEADER = "X-Hotline-Timestamp"
SENDER_HEADER = "X-Hotline-Sender"
# A signed request older (or further in the future) than this is refused.
MAX_SKEW_SECONDS = 300
SECRET_ENV_PREFIX = "HOTLINE_PARTNER_"
INTAKE_PATH = "/partners/intake"

# Handoff statuses (direction "out"). "phone": the partner has no intake API,
# an agent hands the case over by phone and confirms it.
PENDING, SENDING, DELIVERED, CONFIRMED, FAILED, PHONE, RECEIVED = (
    "pending", "sending", "delivered", "confirmed", "failed", "phone", "received",
)
STATUS_LABELS = {
    PENDING: "待推送",
    SENDING: "推送中",
    DELIVERED: "已送达",
    CONFIRMED: "已确认接收",
    FAILED: "推送被拒",
    PHONE: "电话转办",
    RECEIVED: "已接收",
}
HTTP_TIMEOUT_SECONDS = 10
BATCH = 20
MAX_BATCHES = 50
ERROR_MAX = 300

# ---- the directory ------------------------------------------------------------------

CODE_PATTERN = r"^[a-z0-9][a-z0-9_.\-]{1,31}$"
SECRET_ENV_PATTERN = r"^HOTLINE_PARTNER_[A-Z0-9_]{1,47}$"
PHONE_PATTERN = r"^\+?[0-9][0-9\-]{2,19}$"
_LOOPBACK_HOSTS = frozenset({"localhost"})


def _check_intake_url(url: str) -> str:
    """https anywhere; plain http only to this machine (tests, a sidecar proxy)."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.password:
        raise ValueError("接口地址须为 https:// 开头的完整地址")
    if parts.fragment:
        raise ValueError("接口地址不能包含 #")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError("接口地址须使用 https（仅本机地址可用 http）")
    return url


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


PartnerCode = Annotated[str, StringConstraints(pattern=CODE_PATTERN)]
PartnerName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"\S"), AfterValidator(str.strip)]
PartnerPhone = Annotated[str, StringConstraints(pattern=PHONE_PATTERN)] | Literal[""]
IntakeUrl = Annotated[str, StringConstraints(max_length=300), AfterValidator(_check_intake_url)]
SecretEnv = Annotated[str, StringConstraints(pattern=SECRET_ENV_PATTERN)] | Literal[""]


class PartnerFields(BaseModel):
    """A directory entry as an administrator edits it (API and CSV import)."""

    model_config = ConfigDict(extra="forbid")
    name: PartnerName
    phone: PartnerPhone = ""
    intake_url: IntakeUrl = ""
    secret_env: SecretEnv = ""
    is_active: bool = True

    def check_complete(self) -> None:
        # An intake API without a secret could never be signed for.
        if self.intake_url and not self.secret_env:
            raise ValueError("配置了接口地址时必须指定密钥环境变量")
        if not self.intake_url and not self.phone:
            raise ValueError("电话和接口地址至少填写一项")


class NewPartner(PartnerFields):
    code: PartnerCode


def secret_for(partner: PartnerHotline) -> bytes | None:
    """The shared secret, from the environment only; None when it is not configured."""
    name = partner.secret_env or ""
    if not re.fullmatch(SECRET_ENV_PATTERN, name):
        return None
    value = os.environ.get(name, "")
    return value.encode() if value else None


# Public numbers: 长三角 12345 centres (话务直转 partners) and the specialised lines.
# No intake URL here: electronic hand-off is agreed per partner, with a secret.
DEMO_PARTNERS = (
    ("12345-3100", "上海市12345市民服务热线", "021-12345"),
    ("12345-3201", "南京市12345政务服务便民热线", "025-12345"),
    ("12345-3205", "苏州市12345便民服务热线", "0512-12345"),
    ("12345-3301", "杭州市12345政务服务热线", "0571-12345"),
    ("12345-3302", "宁波市12345政务服务热线", "0574-12345"),
    ("12345-3401", "合肥市12345政务服务便民热线", "0551-12345"),
    ("12333", "人力资源和社会保障咨询服务热线（12333）", "12333"),
    ("12366", "税务纳税服务热线（12366）", "12366"),
)


async def load_demo_partners(using_db=None) -> int:
    """Add the demo directory entries that are missing; returns how many were added."""
    added = 0
    for code, name, phone in DEMO_PARTNERS:
        if not await PartnerHotline.filter(code=code).using_db(using_db).exists():
            await PartnerHotline.create(code=code, name=name, phone=phone, using_db=using_db)
            added += 1
    return added


CSV_FIELDS = ("code", "name", "phone", "intake_url", "secret_env", "is_active")


async def export_csv() -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(CSV_FIELDS)
    for p in await PartnerHotline.all().order_by("code"):
        w.writerow([p.code, p.name, p.phone, p.intake_url, p.secret_env, "1" if p.is_active else "0"])
    return out.getvalue()


async def import_csv(text: str) -> tuple[int, int]:
    """Create or update directory entries by code; all rows or none. Returns (created, updated)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = {"code", "name"} - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"CSV 缺少列: {', '.join(sorted(missing))}")
    rows: list[NewPartner] = []
    for line, raw in enumerate(reader, start=2):
        data = {k: (v or "").strip() for k, v in raw.items() if k in CSV_FIELDS}
        data["is_active"] = data.get("is_active", "1") not in ("0", "false", "no", "否")
        try:
            row = NewPartner.model_validate(data)
            row.check_complete()
        except (ValidationError, ValueError) as exc:
            raise ValueError(f"第{line}行: {_first_error(exc)}") from None
        rows.append(row)
    created = updated = 0
    async with in_transaction() as conn:
        for row in rows:
            values = row.model_dump(exclude={"code"})
            n = await PartnerHotline.filter(code=row.code).using_db(conn).update(**values)
            if n:
                updated += 1
            else:
                await PartnerHotline.create(code=row.code, using_db=conn, **values)
                created += 1
    return created, updated


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        e = exc.errors(include_url=False)[0]
        return f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
    return str(exc)


# ---- signing ---------------------------------------------------------------------------


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_headers(secret: bytes, sender: str, body: bytes, *, at: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    return {
        "Content-Type": "application/json",
        SENDER_HEADER: sender,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }


class ReplayGuard:
    """Signatures seen within the freshness window, so a captured request cannot be sent again.

    In memory, per process: a replay that reaches another process still makes
    no second case, because intake is idempotent on the partner's reference.
    """

    def __init__(self, window: int = MAX_SKEW_SECONDS):
        self.window = window
        self._seen: dict[str, float] = {}

    def first_time(self, key: str, now: float) -> bool:
        if len(self._seen) > 1000:
            self._seen = {k: t for k, t in self._seen.items() if t > now}
        if self._seen.get(key, 0) > now:
            return False
        # Kept for two windows: a timestamp may be up to one window in the future.
        self._seen[key] = now + 2 * self.window
        return True


REPLAYS = ReplayGuard()


class Refused(Exception):
    """An inbound request this centre will not act on, and the status to answer with."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


async def authenticate(headers, body: bytes, *, now: float | None = None,
                       replays: ReplayGuard = REPLAYS) -> PartnerHotline:
    """The sending partner of a signed request, or Refused. Checks nothing else."""
    now = time.time() if now is None else now
    sender = headers.get(SENDER_HEADER, "")
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    signature = headers.get(SIGNATURE_HEADER, "")
    if not sender or not timestamp or not signature:
        raise Refused(401, "unsigned", "缺少签名信息")
    if not re.fullmatch(CODE_PATTERN, sender):
        raise Refused(401, "unknown_sender", "未登记的合作热线")
    partner = await PartnerHotline.get_or_none(code=sender)
    if partner is None:
        raise Refused(401, "unknown_sender", "未登记的合作热线")
    if not partner.is_active:
        raise Refused(403, "partner_inactive", "该合作热线已停用")
    secret = secret_for(partner)
    if secret is None:
        # Our side is not configured: nobody can prove to be this partner.
        raise Refused(403, "partner_not_configured", "本中心未配置与该热线的共享密钥")
    if not re.fullmatch(r"[0-9]{1,12}", timestamp) or abs(now - int(timestamp)) > MAX_SKEW_SECONDS:
        raise Refused(401, "stale", "签名时间戳无效或已过期")
    if not hmac.compare_digest(sign(secret, timestamp, body), signature):
        raise Refused(401, "bad_signature", "签名错误")
    if not replays.first_time(f"{sender}:{signature}", now):
        raise Refused(401, "replayed", "重复的请求")
    return partner


# ---- what a hand-off carries ---------------------------------------------------------


def delivery_body(case: Case, handoff: Handoff, sender: str) -> dict[str, Any]:
    """The JSON a partner receives.

    Our case number is the reference the partner answers to. The caller's name
    and number go along only when the case is not confidential: under 首接负责
    the receiving hotline must contact the citizen and survey them afterwards,
    and without a number it could not. A confidential caller stays with us;
    ``contact_via_sender`` tells the partner to reach them through this centre.
    """
    caller = None
    if not case.confidential and case.caller_phone:
        caller = {"name": case.caller_name, "phone": case.caller_phone}
    return {
        "reference": case.number,
        "sender": sender,
        "title": case.title,
        "summary": (handoff.payload or {}).get("summary", "") or case.content[:2000],
        "request_type": case.request_type,
        "category": [c for c in (case.category_l1, case.category_l2, case.category_l3) if c],
        "address": case.address,
        "urgency": case.urgency,
        "created_at": case.created_at.astimezone(timezone.utc).isoformat(),
        "confidential": case.confidential,
        "caller": caller,
        "contact_via_sender": caller is None,
    }


Reference = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")]


class IntakeCaller(BaseModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] = ""
    phone: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9\-]{4,19}$")]


class IntakeIn(BaseModel):
    """A partner's hand-off as received; unknown fields are ignored, so partners can add some."""

    model_config = ConfigDict(extra="ignore")
    reference: Reference
    summary: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=3500)]
    title: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""
    request_type: Literal["consult", "help", "complaint", "report", "suggestion", "praise"] = "consult"
    category: Annotated[list[Annotated[str, StringConstraints(max_length=64)]], Field(max_length=3)] = []
    address: Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)] = ""
    created_at: datetime | None = None
    confidential: bool = False
    caller: IntakeCaller | None = None


class Acknowledgement(BaseModel):
    model_config = ConfigDict(extra="ignore")
    reference: Reference


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def source_id_for(sender: str, reference: str) -> str:
    sid = f"partner:{sender}:{reference}"
    if len(sid) <= 64:
        return sid
    # Long codes and references still key one case: the column holds 64 characters.
    return "partner:" + hashlib.sha256(f"{sender}:{reference}".encode()).hexdigest()[:56]


def _parse(model: type[BaseModel], body: bytes):
    """A signed request's JSON body as ``model``, or Refused with a clear reason."""
    try:
        data = model.model_validate_json(body)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise Refused(400, "bad_json", "请求体不是合法的 JSON") from None
        raise Refused(422, "invalid", f"请求参数有误: {_first_error(exc)}") from None
    if _has_nul(data.model_dump(mode="json")):
        # PostgreSQL text cannot hold U+0000.
        raise Refused(422, "invalid", "不能包含空字符")
    return data


async def receive(partner: PartnerHotline, body: bytes, *, route: bool) -> tuple[Case, bool]:
    """Make (or find again) the case for an authenticated partner's hand-off."""
    data = _parse(IntakeIn, body)
    caller = data.caller if not data.confidential else None
    content = f"{data.summary}\n\n（{partner.name}转来，对方工单号 {data.reference}）"
    new = NewCase(
        channel="partner",
        request_type=data.request_type,
        title=(data.title or f"{partner.name}转办诉求")[:200],
        content=content[:4000],
        caller_name=caller.name if caller else "",
        caller_phone=caller.phone if caller else "",
        confidential=data.confidential,
        address=data.address,
        source_id=source_id_for(partner.code, data.reference),
    )
    actor = Actor(user_id=None, name=partner.name[:64], role=SYSTEM_ROLE)
    case, created = await create_case(new, actor, route=route)
    details = {**(case.details or {}), "partner": partner.code, "partner_reference": data.reference}
    if data.category:
        details["partner_category"] = data.category
    # Written after the case (create_case knows no channel details); a retried
    # delivery writes the same values again, so a crash in between heals itself.
    if case.details != details:
        await Case.filter(id=case.id).update(details=details)
        case.details = details
    try:
        await Handoff.create(case_id=case.id, partner_id=partner.id, direction="in", status=RECEIVED,
                             partner_ref=data.reference, key=f"in:{partner.code}:{data.reference}"[:128],
                             payload={"summary": data.summary})
    except IntegrityError:
        pass  # the same hand-off received before
    return case, created


# ---- delivering hand-offs out ---------------------------------------------------------


_CLAIM_PG = """
UPDATE "handoff" SET "status" = 'sending', "attempts" = "attempts" + 1, "updated_at" = $1
WHERE "status" = 'pending' AND "id" IN (
    SELECT "id" FROM "handoff"
    WHERE "direction" = 'out' AND "status" = 'pending'
      AND ("next_attempt_at" IS NULL OR "next_attempt_at" <= $1)
    ORDER BY "id" LIMIT $2 FOR UPDATE SKIP LOCKED
)
RETURNING "id"
"""


@dataclass
class Outcome:
    status: str  # delivered, retried, failed
    error: str = ""
    reference: str = ""


async def deliver_pending(settings: Settings, now: datetime | None = None, http: httpx.AsyncClient | None = None,
                          *, sla_context: SlaContext | None = None) -> dict[str, int]:
    """Send every hand-off due at ``now`` to its partner; returns what happened."""
    now = now or datetime.now(timezone.utc)
    figures = {"delivered": 0, "retried": 0, "failed": 0, "recovered": await _recover_stuck(now)}
    postgres = connections.get("default").capabilities.dialect == "postgres"
    own_client = None
    try:
        for _ in range(MAX_BATCHES):
            claimed = await (_claim_pg(now) if postgres else _claim_sqlite(now))
            if claimed and http is None:
                http = own_client = httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS, follow_redirects=False)
            for handoff_id in claimed:
                try:
                    figures[await _deliver_one(handoff_id, settings, now, http, sla_context)] += 1
                except Exception:  # one bad row must not strand the batch in 'sending'
                    log.exception("hand-off %s: delivery failed unexpectedly", handoff_id)
                    await Handoff.filter(id=handoff_id, status=SENDING).update(
                        status=PENDING, next_attempt_at=now + BACKOFF_MAX, updated_at=now)
                    figures["retried"] += 1
            if len(claimed) < BATCH:
                break
    finally:
        if own_client is not None:
            await own_client.aclose()
    if figures["delivered"] or figures["failed"] or figures["retried"]:
        log.info("hand-offs: %s", figures)
    return figures


async def _recover_stuck(now: datetime) -> int:
    n = await Handoff.filter(direction="out", status=SENDING, updated_at__lt=now - STUCK_AFTER).update(
        status=PENDING, next_attempt_at=None, updated_at=now)
    if n:
        log.warning("hand-offs: %d stuck in 'sending' were queued again", n)
    return n


async def _claim_pg(now: datetime) -> list[int]:
    rows = await connections.get("default").execute_query_dict(_CLAIM_PG, [now, BATCH])
    return sorted(r["id"] for r in rows)


async def _claim_sqlite(now: datetime) -> list[int]:
    due = Handoff.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
                         direction="out", status=PENDING)
    claimed = []
    for handoff_id in await due.order_by("id").limit(BATCH).values_list("id", flat=True):
        # Compare-and-set: only the sender whose update changed the row sends it.
        if await Handoff.filter(id=handoff_id, status=PENDING).update(
                status=SENDING, attempts=F("attempts") + 1, updated_at=now):
            claimed.append(handoff_id)
    return claimed


async def _deliver_one(handoff_id: int, settings: Settings, now: datetime, http: httpx.AsyncClient,
                       sla_context: SlaContext | None) -> str:
    handoff = await Handoff.filter(id=handoff_id).select_related("case", "partner").get()
    case, partner = handoff.case, handoff.partner
    if case.status != states.HANDOFF_PENDING:
        outcome = Outcome("failed", f"工单状态为「{states.LABELS.get(case.status, case.status)}」，不再推送")
    else:
        outcome = await _post(handoff, case, partner, settings, http)
    mine = Handoff.filter(id=handoff.id, status=SENDING)
    error = outcome.error[:ERROR_MAX]
    if outcome.status == "delivered":
        changed = await mine.update(status=DELIVERED, partner_ref=outcome.reference, error="",
                                    next_attempt_at=None, updated_at=now)
        if changed:
            await _confirm(case.number, outcome.reference, sla_context, now)
    elif outcome.status == "failed":
        changed = await mine.update(status=FAILED, error=error, next_attempt_at=None, updated_at=now)
        log.warning("hand-off %s of case %s to %s refused: %s", handoff.id, case.number, partner.code, error)
    else:
        changed = await mine.update(status=PENDING, error=error, updated_at=now,
                                    next_attempt_at=now + backoff(handoff.attempts))
    if not changed:
        # Confirmed by phone, or taken back as stuck, while this send was under way.
        log.info("hand-off %s changed hands before its result (%s) was recorded", handoff.id, outcome.status)
    return outcome.status


async def _post(handoff: Handoff, case: Case, partner: PartnerHotline, settings: Settings,
                http: httpx.AsyncClient) -> Outcome:
    if not partner.intake_url:
        return Outcome("failed", "合作热线未配置接口地址")
    secret = secret_for(partner)
    if secret is None:
        # The operator can set it; the next attempt after a restart then goes through.
        return Outcome("retried", f"未设置共享密钥环境变量 {partner.secret_env or '(未指定)'}")
    body = json.dumps(delivery_body(case, handoff, settings.centre_code), ensure_ascii=False,
                      separators=(",", ":")).encode()
    try:
        r = await http.post(partner.intake_url, content=body,
                            headers=signed_headers(secret, settings.centre_code, body))
    except httpx.HTTPError as exc:
        return Outcome("retried", f"{type(exc).__name__}: {exc}")
    if 200 <= r.status_code < 300:
        try:
            ack = Acknowledgement.model_validate_json(r.content)
        except ValidationError:
            # Receipt is not proven; re-sending is safe, the partner keys on our reference.
            return Outcome("retried", f"HTTP {r.status_code}: 回执中没有有效的对方工单号")
        return Outcome("delivered", reference=ack.reference)
    text = f"HTTP {r.status_code}: {r.text[:200]}"
    if r.status_code >= 500 or r.status_code in (408, 429):
        return Outcome("retried", text)
    return Outcome("failed", text)


async def _confirm(number: str, reference: str, sla_context: SlaContext | None, now: datetime) -> None:
    try:
        await perform(number, "confirm_handoff", SYSTEM, {"partner_ref": reference, "via": "api"},
                      sla_context=sla_context, now=now)
    except CaseError as exc:
        # Someone confirmed it by phone first: the case already moved on.
        log.info("case %s: electronic receipt not recorded (%s)", number, exc.message)


async def retry_failed(handoff_id: int) -> bool:
    """Queue a refused hand-off again (after the partner fixed its side); False if not failed."""
    return bool(await Handoff.filter(id=handoff_id, direction="out", status=FAILED).update(
        status=PENDING, next_attempt_at=None, error=""))


# ---- results: the receiving centre reports back how the case ended ---------------------------
#
# Under 首接责任制 the first centre keeps the case until the partner says how it
# ended. A centre that closes a case it received POSTs the result, signed like
# a hand-off, to the sender's ``RESULTS_PATH`` (beside its intake path); the
# sender closes its own case with that result (``finish_handoff``, system).

RESULTS_PATH = "/partners/results"
REPORTING, REPORTED, REPORT_FAILED = "reporting", "reported", "report_failed"
STATUS_LABELS.update({REPORTING: "结果回传中", REPORTED: "结果已回传", REPORT_FAILED: "结果回传被拒"})


class ResultIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    reference: Reference  # the receiver's own case number: the reference it acknowledged us with
    partner_reference: Reference  # the reporting centre's case number
    result: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    closed_at: datetime | None = None


def results_url(partner: PartnerHotline) -> str:
    """Where a partner takes results: beside its intake path, or nowhere."""
    url = partner.intake_url or ""
    return url[: -len(INTAKE_PATH)] + RESULTS_PATH if url.endswith(INTAKE_PATH) else ""


async def receive_result(partner: PartnerHotline, body: bytes, *, sla_context: SlaContext | None = None,
                         now: datetime | None = None) -> Case:
    """Close the case we handed to ``partner`` with the result it reports (idempotent)."""
    data = _parse(ResultIn, body)
    case = await Case.get_or_none(number=data.reference) if re.fullmatch(r"[0-9]{8}-[0-9]{6}", data.reference) else None
    # Only the partner the case was handed to may close it; any other gets the same answer as a wrong number.
    if case is None or not await Handoff.exists(case_id=case.id, partner_id=partner.id, direction="out"):
        raise Refused(404, "unknown_reference", "没有转办给贵方的该工单")
    if case.status == states.HANDOFF_PENDING:
        # Their receipt never reached us (or was still being retried): the result proves it.
        await _confirm(case.number, data.partner_reference, sla_context, now or datetime.now(timezone.utc))
        case = await Case.get(id=case.id)
    if case.status == states.HANDED_OFF:
        try:
            case = await perform(case.number, "finish_handoff", SYSTEM, {"result": data.result},
                                 sla_context=sla_context, now=now)
        except CaseError as exc:
            case = await Case.get(id=case.id)
            if case.status != states.CLOSED:
                raise Refused(409, "not_open", exc.message) from None
    if case.status == states.CLOSED and case.close_reason == "handed_off":
        return case  # closed now, or a retried report of a result already recorded
    raise Refused(409, "not_open", f"工单状态为「{states.LABELS.get(case.status, case.status)}」，不能由贵方办结")


def result_body(case: Case, handoff: Handoff, sender: str) -> dict[str, Any]:
    closed = case.closed_at or case.updated_at
    return {
        "reference": handoff.partner_ref,
        "partner_reference": case.number,
        "sender": sender,
        "status": case.status,
        "result": (case.reply_text or states.LABELS.get(case.status, case.status))[:2000],
        "closed_at": closed.astimezone(timezone.utc).isoformat() if closed else None,
    }


async def report_results(settings: Settings, now: datetime | None = None, http: httpx.AsyncClient | None = None
                         ) -> dict[str, int]:
    """Tell each partner how the cases it handed to us ended; retried like hand-offs."""
    now = now or datetime.now(timezone.utc)
    figures = {"reported": 0, "retried": 0, "failed": 0}
    await Handoff.filter(direction="in", status=REPORTING, updated_at__lt=now - STUCK_AFTER).update(
        status=RECEIVED, next_attempt_at=None, updated_at=now)
    due = await Handoff.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
        direction="in", status=RECEIVED, case__status__in=list(states.TERMINAL),
        partner__intake_url__endswith=INTAKE_PATH,
    ).order_by("id").limit(BATCH * 5).values_list("id", flat=True)
    own_client = None
    try:
        for handoff_id in due:
            # Compare-and-set: of two passes, only one reports each result.
            if not await Handoff.filter(id=handoff_id, status=RECEIVED).update(
                    status=REPORTING, attempts=F("attempts") + 1, updated_at=now):
                continue
            if http is None:
                http = own_client = httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS, follow_redirects=False)
            outcome = await _report_one(handoff_id, settings, http)
            mine = Handoff.filter(id=handoff_id, status=REPORTING)
            if outcome.status == "delivered":
                await mine.update(status=REPORTED, error="", next_attempt_at=None, updated_at=now)
                figures["reported"] += 1
            elif outcome.status == "failed":
                await mine.update(status=REPORT_FAILED, error=outcome.error[:ERROR_MAX], updated_at=now)
                figures["failed"] += 1
            else:
                attempts = (await Handoff.get(id=handoff_id)).attempts
                await mine.update(status=RECEIVED, error=outcome.error[:ERROR_MAX], updated_at=now,
                                  next_attempt_at=now + backoff(attempts))
                figures["retried"] += 1
    finally:
        if own_client is not None:
            await own_client.aclose()
    if any(figures.values()):
        log.info("partner results: %s", figures)
    return figures


async def _report_one(handoff_id: int, settings: Settings, http: httpx.AsyncClient) -> Outcome:
    handoff = await Handoff.filter(id=handoff_id).select_related("case", "partner").get()
    secret = secret_for(handoff.partner)
    if secret is None:
        return Outcome("retried", f"未设置共享密钥环境变量 {handoff.partner.secret_env or '(未指定)'}")
    body = json.dumps(result_body(handoff.case, handoff, settings.centre_code), ensure_ascii=False,
                      separators=(",", ":")).encode()
    try:
        r = await http.post(results_url(handoff.partner), content=body,
                            headers=signed_headers(secret, settings.centre_code, body))
    except httpx.HTTPError as exc:
        return Outcome("retried", f"{type(exc).__name__}: {exc}")
    if 200 <= r.status_code < 300:
        return Outcome("delivered")
    text = f"HTTP {r.status_code}: {r.text[:200]}"
    if r.status_code >= 500 or r.status_code in (408, 429):
        return Outcome("retried", text)
    return Outcome("failed", text)
