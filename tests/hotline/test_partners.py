"""Electronic hand-offs between two real hotline instances (跨省诉求首接责任制).

The partner is a second ``hotline serve`` in a subprocess, on its own SQLite
database, with this centre registered in its directory (``hotline partners
import``) and the shared secret in its environment. This process is our
centre: the session database, ``deliver_pending`` as ``tick`` runs it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from cases import states as s
from cases.models import Case, CaseEvent, Handoff, PartnerHotline
from hotline import partners
from hotline.settings import sqlite_url
from tests.conftest import act, free_port

SECRET = "shared-secret-between-changsha-and-shanghai"
PARTNER_SIDE_ENV = "HOTLINE_PARTNER_CHANGSHA"
PARTNER_CODE = "12345-3100"


def _hotline() -> str:
    return shutil.which("hotline") or str(Path(sys.executable).parent / "hotline")


class PartnerCentre:
    """Another 12345 centre: a real server on its own database, which knows us as a partner."""

    def __init__(self, folder: Path, our_code: str, secret: str = SECRET):
        self.folder = folder
        self.db = folder / "partner.sqlite3"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("HOTLINE_", "TWILIO_"))}
        self.env.update({
            "DATABASE_URL": sqlite_url(self.db), "SECRET_KEY": "partner-secret-key",
            "HOTLINE_AUTO_ROUTE": "0", "HOTLINE_EMBEDDED_SWEEP": "0", "HOTLINE_CENTRE_CODE": PARTNER_CODE,
            "HOTLINE_STORAGE_DIR": str(folder / "attachments"), "HOTLINE_OUTBOX_LOG": str(folder / "outbox.log"),
            PARTNER_SIDE_ENV: secret,
        })
        self.env.pop("REDIS_URL", None)
        self._run("init", "--no-demo")
        directory = folder / "partners.csv"
        directory.write_text("code,name,phone,intake_url,secret_env,is_active\n"
                             f"{our_code},长沙市12345政务服务便民热线,0731-12345,,{PARTNER_SIDE_ENV},1\n",
                             encoding="utf-8")
        self._run("partners", "import", str(directory))

    def _run(self, *args: str) -> str:
        done = subprocess.run([_hotline(), *args], env=self.env, cwd=self.folder, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    @property
    def intake_url(self) -> str:
        return self.base + partners.INTAKE_PATH

    def start(self) -> None:
        log = open(self.folder / "server.log", "ab")
        self.proc = subprocess.Popen([_hotline(), "serve", "--port", str(self.port)], env=self.env,
                                     cwd=self.folder, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("partner did not start: " + (self.folder / "server.log").read_text())

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def cases(self) -> list[dict]:
        with sqlite3.connect(self.db) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute('SELECT number, channel, status, source_id, caller_name, caller_phone, '
                              'confidential, content, details FROM "case" ORDER BY id').fetchall()
        return [{**dict(r), "details": json.loads(r["details"])} for r in rows]


@pytest.fixture(scope="module")
def partner_centre(tmp_path_factory):
    from hotline.settings import Settings

    centre = PartnerCentre(tmp_path_factory.mktemp("partner"), Settings(database_url="").centre_code)
    centre.start()
    yield centre
    centre.stop()


@pytest.fixture
def register(monkeypatch):
    """Put a partner in our directory, with its secret in our environment."""

    async def add(intake_url: str, secret: str = SECRET, **fields) -> PartnerHotline:
        env = f"HOTLINE_PARTNER_T{secrets.token_hex(4).upper()}"
        monkeypatch.setenv(env, secret)
        return await PartnerHotline.create(code=f"sh-{secrets.token_hex(4)}", name="上海市12345市民服务热线",
                                           phone="021-12345", intake_url=intake_url, secret_env=env, **fields)

    return add


HANDOFF = {"summary": "市民在上海缴纳社保多年，现回长沙工作，咨询转移接续需上海方面出具的缴费凭证。"}


async def handed_off(client, world, make_case, partner: PartnerHotline, **case_fields) -> str:
    number = (await make_case(**case_fields))["number"]
    r = await act(client, world.agent, number, "handoff", {"partner_code": partner.code, **HANDOFF})
    assert r.status_code == 200, r.text
    return number


async def test_a_handoff_is_delivered_signed_and_confirmed_with_the_partners_own_reference(
        partner_centre, register, client, world, make_case, settings):
    partner = await register(partner_centre.intake_url)
    number = await handed_off(client, world, make_case, partner)

    figures = await partners.deliver_pending(settings)

    assert figures["delivered"] >= 1
    theirs = next(c for c in partner_centre.cases() if c["source_id"] == f"partner:{settings.centre_code}:{number}")
    assert theirs["channel"] == "partner" and theirs["status"] == s.RECEIVED
    assert theirs["details"] == {"partner": settings.centre_code, "partner_reference": number}
    assert HANDOFF["summary"] in theirs["content"]
    # Not confidential: the receiving hotline must reach the citizen itself.
    assert (theirs["caller_name"], theirs["caller_phone"]) == ("张先生", "13800138000")
    case = await Case.get(number=number)
    assert case.status == s.HANDED_OFF and case.details["partner_ref"] == theirs["number"]
    assert case.next_due_at is None
    row = await Handoff.get(case_id=case.id)
    assert (row.status, row.partner_ref, row.attempts) == ("confirmed", theirs["number"], 1)
    event = await CaseEvent.filter(case_id=case.id, action="confirm_handoff").first()
    assert event.actor_role == "system" and event.payload["via"] == "api"


async def test_a_confidential_callers_identity_stays_with_us(partner_centre, register, client, world, make_case,
                                                             settings):
    partner = await register(partner_centre.intake_url)
    number = await handed_off(client, world, make_case, partner, confidential=True)

    await partners.deliver_pending(settings)

    theirs = next(c for c in partner_centre.cases() if c["source_id"].endswith(f":{number}"))
    assert (theirs["caller_name"], theirs["caller_phone"], theirs["confidential"]) == ("", "", 1)
    assert "张先生" not in theirs["content"] and "13800138000" not in theirs["content"]
    assert (await Case.get(number=number)).status == s.HANDED_OFF


async def test_a_partner_that_was_down_gets_the_handoff_once_it_is_back(
        tmp_path, register, client, world, make_case, settings):
    down = PartnerCentre(tmp_path, settings.centre_code)
    partner = await register(down.intake_url)
    number = await handed_off(client, world, make_case, partner)
    t0 = datetime.now(timezone.utc)
    try:
        await partners.deliver_pending(settings, t0)

        row = await Handoff.get(case__number=number)
        assert (row.status, row.attempts) == ("pending", 1)
        assert row.next_attempt_at == t0 + partners.BACKOFF_FIRST
        assert "ConnectError" in row.error
        assert (await Case.get(number=number)).status == s.HANDOFF_PENDING

        down.start()
        await partners.deliver_pending(settings, t0 + timedelta(seconds=10))
        assert (await Handoff.get(id=row.id)).attempts == 1  # still backing off
        await partners.deliver_pending(settings, t0 + timedelta(seconds=31))

        row = await Handoff.get(id=row.id)
        assert (row.status, row.attempts, row.error) == ("confirmed", 2, "")
        [theirs] = down.cases()
        assert row.partner_ref == theirs["number"]
        assert (await Case.get(number=number)).status == s.HANDED_OFF
    finally:
        down.stop()


async def test_a_refused_handoff_fails_the_clock_runs_on_and_an_agent_confirms_by_phone(
        partner_centre, register, client, world, make_case, settings):
    partner = await register(partner_centre.intake_url, secret="not-the-secret-they-have")
    number = await handed_off(client, world, make_case, partner)
    before = len(partner_centre.cases())

    await partners.deliver_pending(settings)

    row = await Handoff.get(case__number=number)
    assert row.status == "failed" and row.error.startswith("HTTP 401") and "bad_signature" in row.error
    assert len(partner_centre.cases()) == before
    case = await Case.get(number=number)
    assert case.status == s.HANDOFF_PENDING and case.next_due_at is not None
    await partners.deliver_pending(settings, datetime.now(timezone.utc) + timedelta(hours=2))
    assert (await Handoff.get(id=row.id)).attempts == 1  # a refusal is not retried on its own

    r = await act(client, world.agent, number, "confirm_handoff", {"partner_ref": "SH-PHONE-88", "via": "phone"})

    assert r.status_code == 200 and r.json()["status"] == s.HANDED_OFF
    assert (await Handoff.get(id=row.id)).status == "confirmed"


def signed_post(base: str, body: dict, *, sender: str, secret: str = SECRET, at: float | None = None,
                signature: str | None = None) -> httpx.Response:
    raw = json.dumps(body, ensure_ascii=False).encode()
    headers = partners.signed_headers(secret.encode(), sender, raw, at=at)
    if signature is not None:
        headers[partners.SIGNATURE_HEADER] = signature
    return httpx.post(base + partners.INTAKE_PATH, content=raw, headers=headers, timeout=10)


def test_the_partner_makes_one_case_of_a_retried_delivery(partner_centre):
    from hotline.settings import Settings

    ours = Settings(database_url="").centre_code
    ref = f"20261125-9{secrets.randbelow(10**5):05d}"
    body = {"reference": ref, "summary": "市民反映跨省异地就医备案问题。", "request_type": "help"}

    first = signed_post(partner_centre.base, body, sender=ours)
    again = signed_post(partner_centre.base, body, sender=ours, at=time.time() + 1)

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["reference"] == again.json()["reference"]
    assert len([c for c in partner_centre.cases() if c["source_id"] == f"partner:{ours}:{ref}"]) == 1


def test_the_partner_refuses_a_bad_signature_and_writes_nothing(partner_centre):
    from hotline.settings import Settings

    ours = Settings(database_url="").centre_code
    before = len(partner_centre.cases())
    body = {"reference": "20261125-999999", "summary": "伪造的转办"}

    forged = signed_post(partner_centre.base, body, sender=ours, secret="guessed")
    stale = signed_post(partner_centre.base, body, sender=ours, at=time.time() - 301)
    stranger = signed_post(partner_centre.base, body, sender="12345-9999")

    assert forged.status_code == 401 and forged.json()["error"] == "bad_signature"
    assert stale.status_code == 401 and stale.json()["error"] == "stale"
    assert stranger.status_code == 401 and stranger.json()["error"] == "unknown_sender"
    assert len(partner_centre.cases()) == before


# ---- how each answer is treated, against a scripted partner -----------------------------------


def scripted(answers: dict[str, httpx.Response]) -> httpx.AsyncClient:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.get(str(request.url), httpx.Response(503))

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    client.seen = seen  # type: ignore[attr-defined]
    return client


async def test_the_request_is_signed_over_timestamp_and_body_and_names_us(register, client, world, make_case,
                                                                          settings):
    url = f"https://12345.sh.example.cn/intake/{secrets.token_hex(3)}"
    partner = await register(url)
    number = await handed_off(client, world, make_case, partner)
    http = scripted({url: httpx.Response(201, json={"reference": "SH-1"})})

    await partners.deliver_pending(settings, http=http)

    [request] = [r for r in http.seen if str(r.url) == url]
    ts = request.headers[partners.TIMESTAMP_HEADER]
    assert abs(int(ts) - time.time()) < 60
    assert request.headers[partners.SENDER_HEADER] == settings.centre_code
    assert request.headers[partners.SIGNATURE_HEADER] == partners.sign(SECRET.encode(), ts, request.content)
    sent = json.loads(request.content)
    assert sent["reference"] == number and sent["summary"] == HANDOFF["summary"]
    assert sent["request_type"] == "complaint" and sent["address"] == "岳麓区橘子洲街道"
    assert sent["caller"] == {"name": "张先生", "phone": "13800138000"} and sent["contact_via_sender"] is False


@pytest.mark.parametrize("answer, status, retried", [
    (httpx.Response(500, text="partner database down"), "pending", True),
    (httpx.Response(429), "pending", True),
    (httpx.Response(200, json={"ok": True}), "pending", True),  # no reference: receipt unproven
    (httpx.Response(422, json={"error": "invalid"}), "failed", False),
    (httpx.Response(404), "failed", False),
])
async def test_a_partners_answer_decides_between_retry_and_failure(answer, status, retried, register, client,
                                                                   world, make_case, settings):
    url = f"https://12345.sh.example.cn/intake/{secrets.token_hex(3)}"
    partner = await register(url)
    number = await handed_off(client, world, make_case, partner)
    t0 = datetime.now(timezone.utc)

    await partners.deliver_pending(settings, t0, http=scripted({url: answer}))

    row = await Handoff.get(case__number=number)
    assert row.status == status and row.error.startswith(f"HTTP {answer.status_code}")
    assert (row.next_attempt_at == t0 + partners.BACKOFF_FIRST) if retried else row.next_attempt_at is None
    assert (await Case.get(number=number)).status == s.HANDOFF_PENDING


async def test_backoff_doubles_up_to_an_hour_and_never_gives_up(register, client, world, make_case, settings):
    url = f"https://12345.sh.example.cn/intake/{secrets.token_hex(3)}"
    partner = await register(url)
    number = await handed_off(client, world, make_case, partner)
    at = datetime.now(timezone.utc)
    waits = []
    for _ in range(9):
        await partners.deliver_pending(settings, at, http=scripted({}))
        row = await Handoff.get(case__number=number)
        waits.append(row.next_attempt_at - at)
        at = row.next_attempt_at

    assert waits[:3] == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120)]
    assert waits[-1] == timedelta(hours=1) and row.status == "pending" and row.attempts == 9


async def test_a_missing_secret_is_retried_without_calling_the_partner(client, world, make_case, settings):
    url = f"https://12345.sh.example.cn/intake/{secrets.token_hex(3)}"
    partner = await PartnerHotline.create(code=f"sh-{secrets.token_hex(4)}", name="上海", intake_url=url,
                                          secret_env="HOTLINE_PARTNER_NEVER_SET")
    number = await handed_off(client, world, make_case, partner)
    http = scripted({})

    await partners.deliver_pending(settings, http=http)

    row = await Handoff.get(case__number=number)
    assert row.status == "pending" and "HOTLINE_PARTNER_NEVER_SET" in row.error
    assert not [r for r in http.seen if str(r.url) == url]


async def test_a_handoff_confirmed_by_phone_first_is_not_sent(register, client, world, make_case, settings):
    url = f"https://12345.sh.example.cn/intake/{secrets.token_hex(3)}"
    partner = await register(url)
    number = await handed_off(client, world, make_case, partner)
    await act(client, world.agent, number, "confirm_handoff", {"partner_ref": "SH-9"})
    http = scripted({url: httpx.Response(201, json={"reference": "SH-10"})})

    await partners.deliver_pending(settings, http=http)

    assert not [r for r in http.seen if str(r.url) == url]
    assert (await Handoff.get(case__number=number)).partner_ref == "SH-9"


async def test_a_tick_delivers_pending_handoffs(register, client, world, make_case, settings, app, monkeypatch):
    from hotline.jobs import tick

    url = f"https://12345.sh.example.cn/intake/{secrets.token_hex(3)}"
    partner = await register(url)
    number = await handed_off(client, world, make_case, partner)
    real = partners.deliver_pending

    async def through_scripted(settings_, now=None, http=None, **kw):
        return await real(settings_, now, scripted({url: httpx.Response(201, json={"reference": "SH-77"})}), **kw)

    monkeypatch.setattr(partners, "deliver_pending", through_scripted)

    await tick(app.state.jobs)

    case = await Case.get(number=number)
    assert case.status == s.HANDED_OFF and case.details["partner_ref"] == "SH-77"


# ---- the directory ------------------------------------------------------------------------------


async def test_the_demo_directory_has_the_yangtze_delta_centres_and_the_specialised_lines():
    await partners.load_demo_partners()
    again = await partners.load_demo_partners()

    assert again == 0
    lines = {p.code: p for p in await PartnerHotline.filter(code__in=[c for c, _, _ in partners.DEMO_PARTNERS])}
    assert lines["12333"].phone == "12333" and lines["12366"].phone == "12366"
    assert lines["12345-3100"].name.startswith("上海") and lines["12345-3100"].phone == "021-12345"
    assert all(not p.intake_url and not p.secret_env for p in lines.values())


async def test_csv_import_is_all_or_nothing_and_export_round_trips():
    code = f"imp-{secrets.token_hex(3)}"
    good = f"code,name,phone\n{code},杭州市12345,0571-12345\n"
    bad = f"code,name,phone,secret_env\n{code}-b,宁波,0574-12345,\n{code}-c,坏,,SECRET_KEY\n"

    assert await partners.import_csv(good) == (1, 0)
    assert await partners.import_csv(good.replace("杭州市12345", "杭州市12345热线")) == (0, 1)
    with pytest.raises(ValueError, match="第3行"):
        await partners.import_csv(bad)

    assert not await PartnerHotline.exists(code=f"{code}-b")
    assert f"{code},杭州市12345热线,0571-12345,,,1" in await partners.export_csv()


async def test_two_concurrent_passes_deliver_each_handoff_once(register, client, world, make_case, settings):
    import asyncio

    url = f"https://12345.sh.example.cn/intake/{secrets.token_hex(3)}"
    partner = await register(url)
    numbers = [await handed_off(client, world, make_case, partner) for _ in range(5)]
    refs = iter(range(1000))

    def answer(request: httpx.Request) -> httpx.Response:
        if str(request.url) != url:
            return httpx.Response(503)
        return httpx.Response(201, json={"reference": f"SH-{next(refs)}"})

    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content)["reference"])
        return answer(request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    await asyncio.gather(partners.deliver_pending(settings, http=http), partners.deliver_pending(settings, http=http))

    assert sorted(n for n in seen if n in numbers) == sorted(numbers)
    rows = await Handoff.filter(case__number__in=numbers)
    assert {r.status for r in rows} == {"confirmed"} and {r.attempts for r in rows} == {1}


# ---- results: how a handed-off case ended comes back electronically -----------------------------------


def results_for(client, body: dict, *, sender: str, secret: str = SECRET, at: float | None = None):
    raw = json.dumps(body, ensure_ascii=False).encode()
    return client.post(partners.RESULTS_PATH, content=raw, headers=partners.signed_headers(secret.encode(), sender,
                                                                                            raw, at=at))


async def confirmed_handoff(register, client, world, make_case, settings, ref: str = "SH-5") -> tuple:
    url = f"https://12345.sh.example.cn/{secrets.token_hex(3)}{partners.INTAKE_PATH}"
    partner = await register(url)
    number = await handed_off(client, world, make_case, partner)
    await partners.deliver_pending(settings, http=scripted({url: httpx.Response(201, json={"reference": ref})}))
    assert (await Case.get(number=number)).status == s.HANDED_OFF
    return partner, number


async def test_the_partners_result_closes_our_case_once(register, client, world, make_case, settings):
    partner, number = await confirmed_handoff(register, client, world, make_case, settings)
    result = {"reference": number, "partner_reference": "SH-5", "result": "已联系市民，上海社保中心已出具缴费凭证并邮寄。"}

    first = await results_for(client, result, sender=partner.code)
    again = await results_for(client, result, sender=partner.code, at=time.time() + 1)

    assert first.status_code == again.status_code == 200, first.text
    assert first.json() == {"reference": number, "status": s.CLOSED}
    case = await Case.get(number=number)
    assert (case.status, case.close_reason, case.reply_text) == (s.CLOSED, "handed_off", result["result"])
    [event] = await CaseEvent.filter(case_id=case.id, action="finish_handoff")
    assert event.actor_role == "system" and event.payload["result"] == result["result"]


async def test_a_result_whose_receipt_was_lost_confirms_and_closes(register, client, world, make_case):
    partner = await register(f"https://12345.sh.example.cn/{secrets.token_hex(3)}{partners.INTAKE_PATH}")
    number = await handed_off(client, world, make_case, partner)

    r = await results_for(client, {"reference": number, "partner_reference": "SH-8", "result": "已办结"},
                          sender=partner.code)

    assert r.status_code == 200
    case = await Case.get(number=number)
    assert case.status == s.CLOSED and case.details["partner_ref"] == "SH-8"
    assert [e.action for e in await CaseEvent.filter(case_id=case.id).order_by("id")][-2:] == [
        "confirm_handoff", "finish_handoff"]


async def test_only_the_partner_the_case_went_to_may_close_it(register, client, world, make_case, settings):
    partner, number = await confirmed_handoff(register, client, world, make_case, settings)
    other = await register(f"https://12345.hz.example.cn{partners.INTAKE_PATH}")
    body = {"reference": number, "partner_reference": "HZ-1", "result": "已办结"}

    stranger = await results_for(client, body, sender=other.code)
    unknown = await results_for(client, {**body, "reference": "20200101-000001"}, sender=partner.code)
    forged = await results_for(client, body, sender=partner.code, secret="guessed")
    empty = await results_for(client, {**body, "result": "  "}, sender=partner.code)

    assert (stranger.status_code, stranger.json()["error"]) == (404, "unknown_reference")
    assert unknown.status_code == 404 and forged.status_code == 401 and empty.status_code == 422
    assert (await Case.get(number=number)).status == s.HANDED_OFF


async def received_and_closed(client, world, partner: PartnerHotline, ref: str) -> Case:
    body = json.dumps({"reference": ref, "summary": "上海转来：市民咨询在长沙办理居住证。"}, ensure_ascii=False).encode()
    case, created = await partners.receive(partner, body, route=False)
    assert created
    r = await act(client, world.agent, case.number, "answer_on_spot", {"answer": "已告知市民居住证办理地点与材料。"})
    assert r.status_code == 200, r.text
    return case


async def test_we_report_how_a_case_a_partner_handed_us_ended(register, client, world, settings):
    url = f"https://12345.sh.example.cn/{secrets.token_hex(3)}"
    partner = await register(url + partners.INTAKE_PATH)
    ref = f"SH-{secrets.token_hex(3)}"
    case = await received_and_closed(client, world, partner, ref)
    http = scripted({url + partners.RESULTS_PATH: httpx.Response(200, json={"status": "closed"})})

    await partners.report_results(settings, http=http)
    await partners.report_results(settings, http=http)

    [request] = [r for r in http.seen if str(r.url) == url + partners.RESULTS_PATH]
    ts = request.headers[partners.TIMESTAMP_HEADER]
    assert request.headers[partners.SIGNATURE_HEADER] == partners.sign(SECRET.encode(), ts, request.content)
    sent = json.loads(request.content)
    assert (sent["reference"], sent["partner_reference"]) == (ref, case.number)
    assert sent["status"] == s.CLOSED and sent["result"] == "已告知市民居住证办理地点与材料。"
    row = await Handoff.get(case_id=case.id)
    assert (row.status, row.attempts) == (partners.REPORTED, 1)


@pytest.mark.parametrize("answer, status", [(httpx.Response(503), "received"), (httpx.Response(409), "report_failed")])
async def test_a_result_report_is_retried_or_given_up_by_the_partners_answer(answer, status, register, client, world,
                                                                            settings):
    url = f"https://12345.sh.example.cn/{secrets.token_hex(3)}"
    partner = await register(url + partners.INTAKE_PATH)
    case = await received_and_closed(client, world, partner, f"SH-{secrets.token_hex(3)}")
    t0 = datetime.now(timezone.utc)

    await partners.report_results(settings, t0, http=scripted({url + partners.RESULTS_PATH: answer}))

    row = await Handoff.get(case_id=case.id)
    assert row.status == status and row.error.startswith(f"HTTP {answer.status_code}")
    assert (row.next_attempt_at == t0 + partners.BACKOFF_FIRST) if status == "received" else True


async def test_a_real_partner_checks_our_signature_and_refuses_a_result_it_never_asked_for(
        partner_centre, register, client, world, settings):
    partner = await register(partner_centre.intake_url)
    case = await received_and_closed(client, world, partner, f"SH-{secrets.token_hex(3)}")

    await partners.report_results(settings)

    row = await Handoff.get(case_id=case.id)
    # Past the signature check (we are in its directory), refused only because it handed us no such case.
    assert row.status == partners.REPORT_FAILED and "unknown_reference" in row.error
