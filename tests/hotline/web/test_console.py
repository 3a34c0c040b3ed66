"""The agent console, the dispatcher queue and the handler workbench, with their JSON endpoints."""

from __future__ import annotations

import re
import secrets

import pytest

from cases.models import Case, Unit
from knowledge_base.search import rank_answers
from routing.catalogue_store import import_csv
from tests.conftest import act

TAXI = {
    "title": "出租车司机拒载还绕路多收费",
    "content": "昨晚在火车站打出租车，司机拒载，后来上了一辆又故意绕路，多收了三十多元，请交通运输部门查处。",
    "address": "",
    "request_type": "complaint",
}


@pytest.fixture
async def catalogue(app, world):
    names = {k: (await Unit.get(id=v)).name for k, v in world.units.items()}
    await import_csv(
        "position,enabled,category,request_type,division_code,keywords,lead,co_units,note\n"
        f"20,1,交通运输,,,,{names['jtj']},,\n"
        f"30,1,城乡建设,,,,{names['zjj']},{names['jtj']},\n"
    )
    app.state.routing.invalidate_catalogue()
    return names


def phone() -> str:
    return "139" + "".join(secrets.choice("0123456789") for _ in range(8))


# ---- the suggestion while typing -------------------------------------------------------------


async def test_the_suggestion_names_the_category_the_lead_unit_and_a_confidence(client, world, catalogue):
    r = await client.post("/api/console/suggest", json=TAXI, headers=world.agent.headers)

    assert r.status_code == 200, r.text
    s = r.json()
    assert s["category"] == "交通运输"
    assert s["lead_unit"] == {"id": world.units["jtj"], "name": catalogue["jtj"]}
    assert 0.5 < s["confidence"] <= 1
    assert len(s["alternatives"]) == 3
    assert s["alternatives"][0]["category"] == "交通运输" and s["alternatives"][0]["words"]
    assert s["alternatives"][0]["lead_unit"]["name"] == catalogue["jtj"]
    assert "出租车" in s["keywords"]


async def test_the_suggestion_finds_the_place_named_in_the_address(client, world, catalogue):
    body = {**TAXI, "title": "楼道灯坏了", "content": "小区楼道灯坏了一个月没人修。", "address": "岳麓区橘子洲街道"}

    s = (await client.post("/api/console/suggest", json=body, headers=world.dispatcher.headers)).json()

    assert s["place"]["district_code"] == "430104" and s["place"]["district_name"] == "岳麓区"


async def test_an_empty_draft_gets_a_clear_answer_instead_of_a_suggestion(client, world):
    r = await client.post("/api/console/suggest", json={"title": " ", "content": ""}, headers=world.agent.headers)

    assert r.status_code == 422
    assert r.json()["message"] == "请先输入诉求标题或内容"


async def test_a_handler_cannot_use_the_console_endpoints(client, world):
    r1 = await client.post("/api/console/suggest", json=TAXI, headers=world.zjj.headers)
    r2 = await client.get("/api/console/history", params={"phone": "13800138000"}, headers=world.zjj.headers)

    assert r1.status_code == 403 and r2.status_code == 403


async def test_a_leader_cannot_use_the_console_endpoints_either(client, world):
    r = await client.post("/api/console/suggest", json=TAXI, headers=world.leader.headers)

    assert r.status_code == 403


async def test_the_console_page_refuses_a_handler(client, world, login):
    await login(world.zjj)

    r = await client.get("/console")

    assert r.status_code == 403
    assert "只有话务员和派单员" in r.text


async def test_a_session_suggestion_needs_the_csrf_header(client, world, login):
    csrf = await login(world.agent)

    refused = await client.post("/api/console/suggest", json=TAXI)
    allowed = await client.post("/api/console/suggest", json=TAXI, headers={"X-CSRF-Token": csrf})

    assert refused.status_code == 403
    assert allowed.status_code == 200


async def test_the_suggestion_offers_the_answer_of_a_similar_closed_case(client, world, make_case):
    case = await make_case(title="住房公积金提取材料", content="请问提取住房公积金需要准备哪些材料？", address="")
    answer = "提取住房公积金需携带身份证、购房合同原件到公积金管理中心窗口办理。"
    assert (await act(client, world.agent, case["number"], "answer_on_spot", {"answer": answer})).status_code == 200

    body = {"title": "", "content": "我想提取住房公积金，要带什么材料去办理？", "request_type": "consult"}
    s = (await client.post("/api/console/suggest", json=body, headers=world.agent.headers)).json()

    found = [a for a in s["answers"] if a["number"] == case["number"]]
    assert found and found[0]["reply_text"] == answer
    assert "公积金" in found[0]["shared_words"] or "住房公积金" in found[0]["shared_words"]


async def test_a_confidential_closed_case_never_becomes_an_answer(client, world, make_case):
    case = await make_case(title="低保申请", content="我家低保申请材料被退回了好几次怎么办", address="", confidential=True)
    await act(client, world.agent, case["number"], "answer_on_spot", {"answer": "低保申请材料由社区受理，张某家请补充收入证明。"})

    body = {"title": "", "content": "低保申请材料被退回怎么办", "request_type": "consult"}
    s = (await client.post("/api/console/suggest", json=body, headers=world.agent.headers)).json()

    assert case["number"] not in [a["number"] for a in s["answers"]]


async def test_the_suggestion_lists_an_open_case_on_the_same_matter_as_a_possible_duplicate(app, client, world, catalogue, make_case):
    text = {"title": "橘子洲街道路面塌陷", "content": "岳麓区橘子洲街道新民路路面塌陷出现大坑，车辆经过很危险，请尽快修复。", "address": "岳麓区橘子洲街道新民路"}
    first = await make_case(**text)
    await app.state.routing.route_case(await Case.get(number=first["number"]), await app.state.sla.get())

    s = (await client.post("/api/console/suggest", json={**text, "request_type": "complaint"}, headers=world.agent.headers)).json()

    dups = {d["number"]: d for d in s["duplicates"]}
    assert first["number"] in dups
    assert dups[first["number"]]["title"] == text["title"] and dups[first["number"]]["score"] >= 0.6


# ---- caller history --------------------------------------------------------------------------


async def test_the_history_lists_the_callers_earlier_cases_newest_first(client, world, make_case):
    number = phone()
    older = await make_case(caller_phone=number, title="第一次来电")
    newer = await make_case(caller_phone=number, title="第二次来电")
    await make_case(caller_phone=phone(), title="别人的来电")

    r = await client.get("/api/console/history", params={"phone": number}, headers=world.agent.headers)

    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 2
    assert [i["number"] for i in body["items"]] == [newer["number"], older["number"]]
    assert body["items"][0]["status_label"] == "待受理" and body["items"][0]["title"] == "第二次来电"


async def test_the_history_masks_a_confidential_callers_number(client, world, make_case):
    number = phone()
    await make_case(caller_phone=number, confidential=True, title="保密来电")

    item = (await client.get("/api/console/history", params={"phone": number}, headers=world.agent.headers)).json()["items"][0]

    assert item["confidential"] is True
    assert item["caller_phone"] == number[:3] + "****" + number[-4:]


async def test_the_history_refuses_a_malformed_number(client, world):
    r = await client.get("/api/console/history", params={"phone": "abc"}, headers=world.agent.headers)

    assert r.status_code == 422


# ---- the console page ------------------------------------------------------------------------


async def test_the_console_page_has_the_form_the_buttons_and_the_csrf_token(client, world, login):
    csrf = await login(world.agent)

    r = await client.get("/console?phone=13800138000")

    assert r.status_code == 200
    for text in ("来电号码", "诉求内容", "直接办结", "创建并派单", "并入已有工单", "智能派单建议", "知识库答复", "疑似重复工单"):
        assert text in r.text
    assert f'data-csrf="{csrf}"' in r.text
    assert 'value="13800138000"' in r.text
    assert '<script src="/static/console.js" defer></script>' in r.text


async def test_the_console_script_is_served(client):
    r = await client.get("/static/console.js")

    assert r.status_code == 200
    assert "javascript" in r.headers["content-type"]
    assert "X-CSRF-Token" in r.text


async def test_the_console_page_sends_a_visitor_to_the_login(client):
    r = await client.get("/console", follow_redirects=False)

    assert r.status_code == 303 and r.headers["location"] == "/login"


# ---- the handler workbench -------------------------------------------------------------------


async def dispatched(client, world, make_case, unit: str, urgency: str, **overrides) -> str:
    number = (await make_case(**overrides))["number"]
    r = await act(client, world.dispatcher, number, "dispatch", {"lead_unit_id": world.units[unit], "urgency": urgency})
    assert r.status_code == 200, r.text
    return number


def numbers_on(html: str) -> list[str]:
    return re.findall(r'<article class="item[^"]*" id="case-([0-9-]+)"', html)


async def test_the_workbench_shows_only_the_units_cases_nearest_deadline_first(client, world, make_case, login):
    general = await dispatched(client, world, make_case, "zjj", "general", title="一般工单")
    urgent = await dispatched(client, world, make_case, "zjj", "urgent", title="紧急工单")
    utilities = await dispatched(client, world, make_case, "zjj", "utilities", title="停水工单")
    other = await dispatched(client, world, make_case, "jtj", "urgent", title="别的单位")
    await login(world.zjj)

    r = await client.get("/workbench")

    assert r.status_code == 200
    shown = numbers_on(r.text)
    assert other not in shown
    assert shown == [urgent, utilities, general]
    assert "签收期限" in r.text and "绿" in r.text


async def test_a_signed_case_offers_contact_reply_return_and_extension(client, world, make_case, login):
    number = await dispatched(client, world, make_case, "zjj", "general")
    assert (await act(client, world.zjj, number, "sign")).status_code == 200
    await login(world.zjj)

    html = (await client.get("/workbench")).text

    section = html[html.index(f'id="case-{number}"'):]
    section = section[: section.index("</article>")]
    for path in ("record-contact", "reply", "request-return", "request-extension"):
        assert f'data-action="/api/cases/{number}/{path}"' in section
    assert f"/api/cases/{number}/sign" not in section
    assert "答复期限" in section and "非本单位职能" in section


async def test_the_workbench_refuses_the_centre(client, world, login):
    await login(world.agent)

    r = await client.get("/workbench")

    assert r.status_code == 403
    assert "只有承办单位人员" in r.text


# ---- the dispatcher queue --------------------------------------------------------------------


async def test_the_queue_shows_a_waiting_case_with_a_suggestion_and_one_click_dispatch(client, world, catalogue, make_case, login):
    case = await make_case(**{k: v for k, v in TAXI.items() if k != "request_type"})
    await login(world.dispatcher)

    html = (await client.get("/queue", params={"q": case["number"]})).text

    section = html[html.index(f'id="case-{case["number"]}"'):]
    section = section[: section.index('<div class="item"') if '<div class="item"' in section else None]
    assert "交通运输" in section and catalogue["jtj"] in section
    assert f'data-action="/api/cases/{case["number"]}/dispatch"' in section
    assert f'name="lead_unit_id" value="{world.units["jtj"]}"' in section


async def test_the_queue_shows_a_return_request_with_its_reason_and_the_rulings(client, world, make_case, login):
    number = await dispatched(client, world, make_case, "zjj", "general")
    r = await act(client, world.zjj, number, "request_return", {"reason_code": "not_our_function", "note": "属交通局职能"})
    assert r.status_code == 200, r.text
    await login(world.dispatcher)

    html = (await client.get("/queue", params={"q": number})).text

    section = html[html.index(f'id="case-{number}"'):]
    assert "非本单位职能" in section and "属交通局职能" in section
    assert f"/api/cases/{number}/approve-return" in section and f"/api/cases/{number}/reject-return" in section


async def test_a_leader_sees_the_queue_without_buttons(client, world, make_case, login):
    case = await make_case()
    await login(world.leader)

    html = (await client.get("/queue", params={"q": case["number"]})).text

    assert case["number"] in html
    assert f'data-action="/api/cases/{case["number"]}/dispatch"' not in html


async def test_the_queue_finds_a_case_by_its_words_and_pages_the_rest(client, world, make_case, login):
    word = "标记" + secrets.token_hex(4)
    case = await make_case(title=f"{word} 路灯不亮")
    await login(world.dispatcher)

    found = (await client.get("/queue", params={"q": word})).text
    odd_page = await client.get("/queue", params={"page": "abc"})

    assert case["number"] in found and "待派单 1<" in found
    assert odd_page.status_code == 200


async def test_the_queue_refuses_a_handler(client, world, login):
    await login(world.zjj)

    assert (await client.get("/queue")).status_code == 403


# ---- the knowledge-base ranking, alone ---------------------------------------------------------


def test_the_answer_sharing_the_most_words_ranks_first():
    docs = [
        ("a", ["公积金", "提取", "材料", "身份证"]),
        ("b", ["公积金", "贷款", "利率"]),
        ("c", ["噪音", "施工", "夜间"]),
    ]

    found = rank_answers(["提取", "公积金", "材料"], docs)

    assert [m.key for m in found] == ["a"]
    assert found[0].shared_words == ("公积金", "提取", "材料") or set(found[0].shared_words) == {"公积金", "提取", "材料"}


def test_one_shared_word_is_not_an_answer():
    assert rank_answers(["公积金", "提取"], [("b", ["公积金", "贷款"])]) == []


def test_a_rare_shared_word_counts_more_than_a_common_one():
    docs = [("common", ["小区", "物业", "停车"]), ("rare", ["小区", "电梯", "维保"])] + [
        (f"x{i}", ["小区", "物业"]) for i in range(5)
    ]

    found = rank_answers(["小区", "物业", "电梯", "维保"], docs, limit=2)

    assert found[0].key == "rare"


def test_ties_keep_the_given_order_and_the_limit_holds():
    docs = [(str(i), ["供暖", "温度", "不达标"]) for i in range(5)]

    found = rank_answers(["供暖", "温度"], docs, limit=3)

    assert [m.key for m in found] == ["0", "1", "2"]


def test_an_empty_query_finds_nothing():
    assert rank_answers([], [("a", ["公积金", "提取"])]) == []
