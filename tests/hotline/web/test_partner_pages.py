"""The partner directory page and the case page's hand-off and call sections.

Forms on these pages are ``data-action`` forms that console.js posts to the
JSON API. The tests read a form out of the page and send exactly what the
script would (its fields, typed the same way, with the session's CSRF token),
so a field the API does not accept fails here, not in front of an agent.
"""

from __future__ import annotations

import html
import json
import secrets
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

from cases import states as s
from cases.models import Case, Handoff, PartnerHotline, User
from hotline.models import CallLog
from tests.conftest import act

SCRIPT = "<script>alert(1)</script>"


# ---- reading a form out of a page, as console.js would send it ---------------------------------


class _FormReader(HTMLParser):
    """The attributes and named fields of one form, found by its action attribute."""

    def __init__(self, attr: str, value: str):
        super().__init__(convert_charrefs=True)
        self.attr, self.value = attr, value
        self.form: dict | None = None
        self.fields: list[dict] = []
        self._inside = self._done = False
        self._open: dict | None = None  # the textarea or select being read

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form" and not self._done and a.get(self.attr) == self.value:
            self.form, self._inside = a, True
        elif not self._inside:
            return
        elif tag == "input" and a.get("name"):
            self.fields.append({"tag": tag, **a})
        elif tag in ("textarea", "select") and a.get("name"):
            self._open = {"tag": tag, **a, "text": "", "options": []}
            self.fields.append(self._open)
        elif tag == "option" and self._open is not None:
            self._open["options"].append(a)

    def handle_data(self, data):
        if self._open is not None and self._open["tag"] == "textarea":
            self._open["text"] += data

    def handle_endtag(self, tag):
        if tag in ("textarea", "select"):
            self._open = None
        elif tag == "form" and self._inside:
            self._inside, self._done = False, True


def read_form(page: str, action: str, attr: str = "data-action") -> tuple[dict, dict]:
    """(the form's attributes, the JSON body its fields make as the page shows them)."""
    reader = _FormReader(attr, action)
    reader.feed(page)
    assert reader.form is not None, f"no form with {attr}={action!r} in the page"
    body = {}
    for f in reader.fields:
        kind = f.get("data-type", "text")
        if kind == "skip":
            continue
        if f["tag"] == "input" and f.get("type") == "checkbox":
            body[f["name"]] = "checked" in f
        elif f["tag"] == "textarea":
            body[f["name"]] = f["text"]
        elif f["tag"] == "select":
            chosen = [o for o in f["options"] if "selected" in o] or f["options"][:1]
            body[f["name"]] = chosen[0]["value"] if chosen else ""
        else:
            body[f["name"]] = f.get("value", "")
        if kind == "int":
            body[f["name"]] = int(body[f["name"]])
    return reader.form, body


async def submit(client, csrf: str, page: str, action: str, *, method: str = "POST",
                 attr: str = "data-action", **typed):
    """Fill in ``typed`` and send the form like the page's script: JSON, session cookie, X-CSRF-Token."""
    form, body = read_form(page, action, attr)
    unknown = set(typed) - set(body)
    assert not unknown, f"the form has no fields {unknown}"
    body.update(typed)
    return await client.request(method, form[attr], content=json.dumps(body),
                                headers={"Content-Type": "application/json", "X-CSRF-Token": csrf})


# ---- fixtures -----------------------------------------------------------------------------------


async def a_partner(*, name: str = "上海市12345市民服务热线", phone: str = "021-12345", intake_url: str = "",
                    active: bool = True) -> PartnerHotline:
    code = f"p-{secrets.token_hex(4)}"
    return await PartnerHotline.create(code=code, name=f"{name}{code}", phone=phone, intake_url=intake_url,
                                       secret_env="HOTLINE_PARTNER_NOT_SET_IN_TESTS" if intake_url else "",
                                       is_active=active)


async def handed_off(client, world, make_case, partner: PartnerHotline) -> dict:
    case = await make_case()
    r = await act(client, world.agent, case["number"], "handoff",
                  {"partner_code": partner.code, "summary": "市民咨询上海社保转回长沙的办理流程。"})
    assert r.status_code == 200, r.text
    return case


async def case_page(client, number: str) -> str:
    r = await client.get(f"/cases/{number}")
    assert r.status_code == 200, r.text
    return r.text


# ---- the directory ------------------------------------------------------------------------------


async def test_the_directory_shows_an_agent_every_partner_without_the_admin_forms(client, login, world):
    phone_only = await a_partner()
    electronic = await a_partner(name="南京市12345热线", phone="025-12345",
                                 intake_url="https://12345.nj.example.cn/partners/intake")
    retired = await a_partner(name="停用的热线", active=False)
    await login(world.agent)

    r = await client.get("/partners")

    assert r.status_code == 200
    assert '<a href="/partners">合作热线</a>' in r.text
    row = r.text.split(f'id="partner-{phone_only.code}"')[1].split("</tr>")[0]
    assert phone_only.name in row and "021-12345" in row and "无（电话转办）" in row and "启用" in row
    row = r.text.split(f'id="partner-{electronic.code}"')[1].split("</tr>")[0]
    assert "有" in row and "本中心未设置共享密钥" in row
    row = r.text.split(f'id="partner-{retired.code}"')[1].split("</tr>")[0]
    assert "停用" in row
    assert 'data-action="/api/partners"' not in r.text
    assert 'data-method="PUT"' not in r.text
    assert "HOTLINE_PARTNER_NOT_SET_IN_TESTS" not in r.text


async def test_leaders_and_dispatchers_read_the_directory_too(client, login, world):
    partner = await a_partner()
    for who in (world.dispatcher, world.leader):
        client.cookies.clear()
        await login(who)
        r = await client.get("/partners")
        assert r.status_code == 200 and partner.name in r.text, who.role


async def test_a_unit_gets_a_403_page_and_no_link_to_the_directory(client, login, world):
    partner = await a_partner()
    await login(world.zjj)

    r = await client.get("/partners")
    home = await client.get("/")

    assert r.status_code == 403
    assert "只有热线中心人员" in r.text
    assert partner.name not in r.text
    assert 'href="/partners"' not in home.text


async def test_the_directory_needs_a_login(client):
    r = await client.get("/partners")

    assert r.status_code == 303 and r.headers["location"] == "/login"


async def test_an_admin_adds_and_edits_partners_through_the_pages_forms(client, login, world):
    partner = await a_partner()
    csrf = await login(world.admin)
    page = (await client.get("/partners")).text
    assert 'data-action="/api/partners"' in page
    assert f'data-action="/api/partners/{partner.code}" data-method="PUT"' in page

    code = f"sz-{secrets.token_hex(3)}"
    added = await submit(client, csrf, page, "/api/partners", code=code, name="苏州市12345热线", phone="0512-12345")
    form, shown = read_form(page, f"/api/partners/{partner.code}")
    edited = await submit(client, csrf, page, f"/api/partners/{partner.code}", method=form["data-method"],
                          phone="021-12345-8", is_active=False)

    assert added.status_code == 201, added.text
    assert added.json()["is_active"] is True  # the add form's box starts ticked
    assert shown == {"name": partner.name, "phone": "021-12345", "intake_url": "", "secret_env": "",
                     "is_active": True}
    assert edited.status_code == 200, edited.text
    stored = await PartnerHotline.get(code=partner.code)
    assert (stored.name, stored.phone, stored.is_active) == (partner.name, "021-12345-8", False)
    after = (await client.get("/partners")).text
    assert "苏州市12345热线" in after
    assert "停用" in after.split(f'id="partner-{partner.code}"')[1].split("</tr>")[0]


async def test_the_directory_forms_check_what_the_api_checks(client, login, world):
    await login(world.admin)

    page = (await client.get("/partners")).text

    assert 'name="code" required maxlength="32" pattern="[a-z0-9][a-z0-9_.\\-]{1,31}"' in page
    assert 'pattern="HOTLINE_PARTNER_[A-Z0-9_]{1,47}"' in page


async def test_an_agents_session_cannot_use_the_admin_forms_action(client, login, world):
    csrf = await login(world.agent)
    body = {"code": f"x-{secrets.token_hex(3)}", "name": "某热线", "phone": "12333"}

    r = await client.post("/api/partners", json=body, headers={"X-CSRF-Token": csrf})

    assert r.status_code == 403
    assert not await PartnerHotline.exists(code=body["code"])


# ---- the case page: handing a case off ------------------------------------------------------------


async def test_an_agent_gets_the_handoff_forms_on_a_received_case(client, login, world, make_case):
    active = await a_partner()
    api_only = await a_partner(name="电子转办热线", phone="", intake_url="https://12345.hz.example.cn/in")
    retired = await a_partner(name="已停用热线", active=False)
    case = await make_case(content="在上海缴纳的社保想转回长沙，不知道怎么办。")
    await login(world.agent)

    page = await case_page(client, case["number"])

    form, body = read_form(page, f"/api/cases/{case['number']}/handoff")
    assert body["summary"] == "在上海缴纳的社保想转回长沙，不知道怎么办。"
    assert set(body) == {"partner_code", "summary", "note"}
    handoff_form = page.split(f'id="handoff-{case["number"]}"')[1].split("</form>")[0]
    assert active.code in handoff_form and api_only.code in handoff_form and retired.code not in handoff_form
    transfer_form = page.split(f'id="transfer-call-{case["number"]}"')[1].split("</form>")[0]
    # A live call can only be put through to a partner with a number.
    assert active.code in transfer_form and api_only.code not in transfer_form
    assert 'name="call_sid"' not in transfer_form and "当前没有进行中的通话" in transfer_form
    assert '<script src="/static/console.js" defer></script>' in page
    assert "通话记录" in page


async def test_a_handler_sees_no_handoff_forms_handoffs_or_calls(client, login, world, make_case):
    partner = await a_partner()
    case = await make_case()
    row = await Case.get(number=case["number"])
    # A case a partner handed to us, then dispatched to a unit: the centre sees where it came from.
    await Handoff.create(case_id=row.id, partner_id=partner.id, direction="in", status="received",
                         partner_ref="SH0001", key=f"in:{partner.code}:SH0001")
    await CallLog.create(call_sid=f"CA{secrets.token_hex(16)}", direction="inbound", case_id=row.id,
                         from_number="+8613911112222", status="completed")
    await act(client, world.dispatcher, case["number"], "dispatch", {"lead_unit_id": world.units["zjj"]})

    await login(world.zjj)
    unit_page = await case_page(client, case["number"])
    client.cookies.clear()
    await login(world.agent)
    centre_page = await case_page(client, case["number"])

    for text in ("转办至合作热线", "转办记录", "通话记录", partner.name, "data-action", "console.js"):
        assert text not in unit_page, text
    assert partner.name in centre_page and "转入" in centre_page and "SH0001" in centre_page


async def test_a_leader_reads_the_handoffs_but_gets_no_forms(client, login, world, make_case):
    partner = await a_partner()
    case = await handed_off(client, world, make_case, partner)
    await login(world.leader)

    page = await case_page(client, case["number"])

    assert partner.name in page and "转办记录" in page
    assert "data-action" not in page


async def test_the_hand_off_form_hands_the_case_off(client, login, world, make_case):
    partner = await a_partner()
    case = await make_case()
    csrf = await login(world.agent)
    page = await case_page(client, case["number"])

    r = await submit(client, csrf, page, f"/api/cases/{case['number']}/handoff",
                     partner_code=partner.code, note="已告知市民")

    assert r.status_code == 200, r.text
    assert r.json()["status"] == s.HANDOFF_PENDING
    [handoff] = await Handoff.filter(case__number=case["number"])
    assert handoff.payload["summary"] == case["content"]


async def test_after_a_handoff_the_page_shows_it_and_offers_a_phone_confirmation(client, login, world, make_case):
    partner = await a_partner()
    case = await handed_off(client, world, make_case, partner)
    await login(world.agent)

    page = await case_page(client, case["number"])

    assert "转办待确认" in page
    row = page.split('class="handoff"')[1].split("</tr>")[0]
    assert partner.name in row and "转出" in row and "电话转办" in row
    assert "前取得对方确认" in page
    form, body = read_form(page, f"/api/cases/{case['number']}/confirm-handoff")
    assert body == {"via": "phone", "partner_ref": "", "note": ""}
    assert f"/api/cases/{case['number']}/handoff" not in page  # handed off once is enough
    assert "finish-handoff" not in page


async def test_confirming_by_phone_through_the_form_moves_the_case_to_handed_off(client, login, world, make_case):
    partner = await a_partner()
    case = await handed_off(client, world, make_case, partner)
    csrf = await login(world.agent)
    page = await case_page(client, case["number"])

    r = await submit(client, csrf, page, f"/api/cases/{case['number']}/confirm-handoff",
                     partner_ref="SH20261125-0042", note="对方坐席电话确认接收")

    assert r.status_code == 200, r.text
    assert (await Case.get(number=case["number"])).status == s.HANDED_OFF
    after = await case_page(client, case["number"])
    assert "已转办跟踪" in after
    row = after.split('class="handoff"')[1].split("</tr>")[0]
    assert "SH20261125-0042" in row and "已确认接收" in row and "确认 " in row
    assert "confirm-handoff" not in after

    finished = await submit(client, csrf, after, f"/api/cases/{case['number']}/finish-handoff",
                            result="上海方面已办理社保转移。")
    assert finished.status_code == 200, finished.text
    assert (await Case.get(number=case["number"])).status == s.CLOSED


async def test_a_confirmation_without_the_partners_reference_is_refused(client, login, world, make_case):
    partner = await a_partner()
    case = await handed_off(client, world, make_case, partner)
    csrf = await login(world.agent)
    page = await case_page(client, case["number"])

    r = await submit(client, csrf, page, f"/api/cases/{case['number']}/confirm-handoff", partner_ref="  ")

    assert r.status_code == 422
    assert (await Case.get(number=case["number"])).status == s.HANDOFF_PENDING


async def test_the_forms_need_the_sessions_csrf_token(client, login, world, make_case):
    partner = await a_partner()
    case = await handed_off(client, world, make_case, partner)
    await login(world.agent)
    page = await case_page(client, case["number"])

    r = await submit(client, "forged", page, f"/api/cases/{case['number']}/confirm-handoff", partner_ref="SH1")

    assert r.status_code == 403
    assert (await Case.get(number=case["number"])).status == s.HANDOFF_PENDING


async def test_a_refused_delivery_can_be_pushed_again_by_a_dispatcher_only(client, login, world, make_case):
    partner = await a_partner(intake_url="https://12345.sh.example.cn/partners/intake")
    case = await handed_off(client, world, make_case, partner)
    [handoff] = await Handoff.filter(case__number=case["number"])
    await Handoff.filter(id=handoff.id).update(status="failed", attempts=1, error="HTTP 401: bad_signature")
    retry = f"/api/handoffs/{handoff.id}/retry"

    await login(world.agent)
    agent_page = await case_page(client, case["number"])
    client.cookies.clear()
    csrf = await login(world.dispatcher)
    page = await case_page(client, case["number"])
    r = await submit(client, csrf, page, retry)

    row = agent_page.split('class="handoff"')[1].split("</tr>")[0]
    assert "推送被拒" in row and "HTTP 401: bad_signature" in row
    assert retry not in agent_page
    assert r.status_code == 200, r.text
    assert (await Handoff.get(id=handoff.id)).status == "pending"
    assert retry not in await case_page(client, case["number"])


async def test_partner_names_are_shown_as_text(client, login, world, make_case):
    partner = await a_partner(name=SCRIPT)
    case = await make_case()
    await login(world.admin)
    directory = (await client.get("/partners")).text
    client.cookies.clear()
    await login(world.agent)
    before = await case_page(client, case["number"])
    await act(client, world.agent, case["number"], "handoff", {"partner_code": partner.code, "summary": SCRIPT})
    after = await case_page(client, case["number"])

    for page in (directory, before, after):
        assert SCRIPT not in page
        assert html.escape(SCRIPT, quote=False) in page


# ---- 话务直转 ---------------------------------------------------------------------------------------


async def test_without_a_live_call_the_transfer_form_records_the_handoff_only(client, login, world, make_case):
    partner = await a_partner()
    case = await make_case()
    csrf = await login(world.agent)
    page = await case_page(client, case["number"])

    r = await submit(client, csrf, page, f"/api/cases/{case['number']}/transfer-call", partner_code=partner.code)

    assert r.status_code == 200, r.text
    assert r.json()["call_redirected"] is False
    assert r.json()["case"]["status"] == s.HANDOFF_PENDING


async def test_during_a_call_the_transfer_form_carries_the_callers_call(client, login, world, make_case):
    case = await make_case()
    await a_partner()
    agent = await User.get(username=world.agent.username)
    caller = await CallLog.create(call_sid=f"CA{secrets.token_hex(16)}", direction="inbound", purpose="transfer",
                                  from_number="+8613922223333", status="in-progress")
    await CallLog.create(call_sid=f"CA{secrets.token_hex(16)}", direction="outbound", purpose="transfer",
                         agent_id=agent.id, peer_id=caller.id, status="in-progress")
    await login(world.agent)

    page = await case_page(client, case["number"])

    _, body = read_form(page, f"/api/cases/{case['number']}/transfer-call")
    assert body["call_sid"] == caller.call_sid
    assert "您正在通话中" in page
    await CallLog.filter(id=caller.id).update(status="completed")  # frees the agent for other tests


# ---- the case's calls ------------------------------------------------------------------------------


async def test_the_call_table_shows_the_cases_calls_without_any_number(client, login, world, make_case):
    case = await make_case()
    row = await Case.get(number=case["number"])
    kept_until = datetime(2027, 5, 20, 1, 30, tzinfo=timezone.utc)
    await CallLog.create(call_sid=f"CA{secrets.token_hex(16)}", direction="inbound", purpose="voicemail",
                         from_number="+8613944445555", to_number="+8673112345", status="completed",
                         case_id=row.id, recording_url="https://api.twilio.com/rec/RE1", retain_until=kept_until,
                         ended_at=datetime.now(timezone.utc))
    await CallLog.create(call_sid=f"CA{secrets.token_hex(16)}", direction="outbound", purpose="survey",
                         from_number="+8673112345", to_number="+8613966667777", status="no-answer",
                         case_id=row.id, recording_sid=None, recording_url="https://api.twilio.com/rec/RE2",
                         retain_until=kept_until - timedelta(days=200),
                         recording_deleted_at=datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc))
    await login(world.dispatcher)

    page = await case_page(client, case["number"])

    rows = [r.split("</tr>")[0] for r in page.split('<tr class="call">')[1:]]
    assert len(rows) == 2
    assert "呼入" in rows[0] and "电话留言" in rows[0] and "已结束" in rows[0]
    assert "有录音，保留至 2027-05-20 09:30" in rows[0]
    assert "呼出" in rows[1] and "语音回访" in rows[1] and "无人接听" in rows[1]
    assert "已按保留期删除（2026-11-01 10:00）" in rows[1]
    for number in ("13944445555", "13966667777", "73112345"):
        assert number not in page
    assert "api.twilio.com" not in page


async def test_a_case_without_calls_says_so(client, login, world, make_case):
    case = await make_case()
    await login(world.agent)

    page = await case_page(client, case["number"])

    assert "暂无通话记录" in page
