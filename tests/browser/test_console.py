"""The working screens in a real headless Chromium against a real ``hotline serve``.

An agent takes a call on the console and answers it on the spot; a dispatcher
sends a waiting case to routing's suggestion in one click; a handler signs for
and replies to a case on the workbench. Uses the shared fixtures of
tests/browser/conftest.py (``page``, ``log_in``, ``screenshot``), which print
the path of every screenshot.
"""

from __future__ import annotations

import httpx

from tests.conftest import new_case_body


def api(live_server: str, method: str, path: str, person, **kw) -> httpx.Response:
    return httpx.request(method, live_server + path, headers={**person.headers, **kw.pop("headers", {})}, **kw)


async def test_an_agent_sees_suggestions_while_typing_and_answers_on_the_spot(live_server, page, log_in, screenshot, world):
    await log_in(page, world.agent)
    await page.get_by_role("link", name="坐席工作台").click()
    await page.wait_for_url("**/console")

    await page.get_by_label("来电号码").fill("13912345678")
    await page.get_by_label("标题").fill("出租车拒载")
    # Typed like a person, key by key: the suggestion must arrive while typing.
    await page.get_by_label("诉求内容").press_sequentially("昨晚在火车站打出租车，司机拒载还绕路多收费，请交通部门查处。", delay=15)
    category = page.locator("#suggested-category")
    await category.wait_for()
    assert (await category.text_content()).strip() not in ("", "—")
    assert "%" in await page.locator("#suggested-confidence").text_content()
    assert await page.locator("ol.alts li").count() == 3
    await screenshot(page, "console-suggestion")

    answer = "已告知市民可拨打出租车服务监督电话投诉，并保留乘车发票。"
    await page.get_by_label("直接答复（直接办结时必填）").fill(answer)
    await page.get_by_role("button", name="直接办结").click()
    done = page.locator("#last-case")
    await done.wait_for()
    number = (await done.text_content()).strip()
    assert "已办结" in await page.locator("#console-msg").text_content()
    # The form is cleared for the next call only once the case is closed.
    assert await page.get_by_label("诉求内容").input_value() == ""
    await screenshot(page, "console-answered")

    case = api(live_server, "GET", f"/api/cases/{number}", world.agent).json()
    assert case["status"] == "closed" and case["status_label"] == "已办结"
    assert case["reply_text"] == answer and case["close_reason"] == "answered_on_spot"
    assert case["caller_phone"] == "13912345678"
    assert page.js_errors == []


async def test_typed_text_survives_a_reload_of_the_console(page, log_in, world):
    await log_in(page, world.agent)
    await page.goto("/console")
    await page.get_by_label("诉求内容").fill("小区门口的路灯坏了好几天")

    await page.reload()

    assert await page.get_by_label("诉求内容").input_value() == "小区门口的路灯坏了好几天"


async def test_a_dispatcher_dispatches_to_the_suggestion_in_one_click(live_server, page, log_in, screenshot, world):
    jtj = next(u["name"] for u in api(live_server, "GET", "/api/units", world.admin).json() if u["id"] == world.units["jtj"])
    csv = f"position,enabled,category,request_type,division_code,keywords,lead,co_units,note\n20,1,交通运输,,,,{jtj},,\n"
    r = api(live_server, "PUT", "/api/routing/catalogue.csv", world.admin, content=csv.encode(), headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    body = new_case_body(title="出租车拒载绕路", content="在火车站打出租车，司机拒载，又故意绕路多收费，请交通运输部门查处。", address="")
    number = api(live_server, "POST", "/api/cases?route=false", world.agent, json=body).json()["number"]

    await log_in(page, world.dispatcher)
    await page.get_by_role("link", name="派单队列").click()
    await page.wait_for_url("**/queue")
    await page.get_by_label("查找").fill(number)
    await page.get_by_label("查找").press("Enter")
    await page.wait_for_url("**/queue?q=*")
    item = page.locator(f"#case-{number}")
    assert "交通运输" in await item.text_content()
    await screenshot(page, "queue")

    await item.get_by_role("button", name=f"按建议派单：{jtj}").click()
    await page.locator(f"#case-{number}").wait_for(state="detached")

    case = api(live_server, "GET", f"/api/cases/{number}", world.agent).json()
    assert case["status"] == "dispatched" and case["lead_unit_id"] == world.units["jtj"]
    assert case["category_l1"] == "交通运输"
    assert page.js_errors == []


async def test_a_handler_signs_and_replies_on_the_workbench(live_server, page, log_in, screenshot, world):
    number = api(live_server, "POST", "/api/cases?route=false", world.agent, json=new_case_body(title="楼道灯不亮")).json()["number"]
    r = api(live_server, "POST", f"/api/cases/{number}/dispatch", world.dispatcher, json={"lead_unit_id": world.units["zjj"]})
    assert r.status_code == 200, r.text

    await log_in(page, world.zjj)
    await page.get_by_role("link", name="承办工作台").click()
    await page.wait_for_url("**/workbench")
    item = page.locator(f"#case-{number}")
    assert "绿灯" in await item.locator(".light").text_content()
    await screenshot(page, "workbench-dispatched")

    await item.get_by_role("button", name="签收").click()
    await item.get_by_role("button", name="答复").wait_for()
    reply = "已安排物业更换楼道灯，并电话告知市民。"
    await item.get_by_label("答复内容").fill(reply)
    await screenshot(page, "workbench-signed")
    await item.get_by_role("button", name="答复").click()
    await page.locator(f"#case-{number}").wait_for(state="detached")
    await screenshot(page, "workbench-replied")

    case = api(live_server, "GET", f"/api/cases/{number}", world.agent).json()
    assert case["status"] == "replied" and case["reply_text"] == reply
    assert case["signed_at"] is not None
    assert page.js_errors == []
