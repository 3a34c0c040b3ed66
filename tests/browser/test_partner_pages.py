"""Partner hotlines in a real headless Chromium against a real ``hotline serve``.

An agent hands a received case to a partner hotline on the case page and,
after phoning the partner, records its confirmation; an administrator edits a
directory entry (the page's PUT form). Uses the fixtures of
tests/browser/conftest.py, which print the path of every screenshot.
"""

from __future__ import annotations

import secrets

import httpx

from tests.conftest import new_case_body


def api(live_server: str, method: str, path: str, person, **kw) -> httpx.Response:
    return httpx.request(method, live_server + path, headers=person.headers, **kw)


def add_partner(live_server: str, world, **fields) -> dict:
    code = f"sh-{secrets.token_hex(3)}"
    body = {"code": code, "name": f"上海市12345市民服务热线{code}", "phone": "021-12345", **fields}
    r = api(live_server, "POST", "/api/partners", world.admin, json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def test_an_agent_hands_a_case_off_and_records_the_phone_confirmation(live_server, page, log_in, screenshot, world):
    partner = add_partner(live_server, world)
    content = "市民在上海缴纳了五年社保，现回长沙工作，想把社保关系转回长沙，需上海方面出具缴费凭证。"
    number = api(live_server, "POST", "/api/cases?route=false", world.agent,
                 json=new_case_body(title="社保转移", content=content)).json()["number"]

    await log_in(page, world.agent)
    await page.goto(f"/cases/{number}")
    form = page.locator(f"#handoff-{number}")
    assert await form.get_by_label("转办摘要").input_value() == content
    await form.get_by_label("转办至").select_option(partner["code"])
    await form.get_by_label("转办备注").fill("已告知市民由上海热线办理")
    await screenshot(page, "case-handoff-form")
    async with page.expect_navigation():
        await form.get_by_role("button", name="转办至合作热线").click()

    assert "转办待确认" in await page.locator("h1").text_content()
    row = page.locator("tr.handoff")
    assert partner["name"] in await row.text_content()
    assert "电话转办" in await row.text_content()
    confirm = page.locator(f"#confirm-handoff-{number}")
    await confirm.get_by_label("对方工单号（电话确认）").fill("SH20261125-0042")
    await confirm.get_by_label("确认情况").fill("已电话联系上海热线坐席，对方确认接收")
    await screenshot(page, "case-handoff-pending")
    async with page.expect_navigation():
        await confirm.get_by_role("button", name="电话确认").click()

    assert "已转办跟踪" in await page.locator("h1").text_content()
    assert "SH20261125-0042" in await page.locator("tr.handoff").text_content()
    assert await page.locator(f"#finish-handoff-{number}").is_visible()
    await screenshot(page, "case-handed-off")

    case = api(live_server, "GET", f"/api/cases/{number}", world.agent).json()
    assert case["status"] == "handed_off"
    [handoff] = api(live_server, "GET", f"/api/handoffs?number={number}", world.agent).json()
    assert handoff["status"] == "confirmed" and handoff["partner_ref"] == "SH20261125-0042"
    assert page.js_errors == []


async def test_an_admin_edits_a_partner_on_the_directory_page(live_server, mobile_page, log_in, screenshot, world):
    partner = add_partner(live_server, world)
    page = mobile_page

    await log_in(page, world.admin)
    await page.get_by_role("link", name="合作热线").click()
    await page.wait_for_url("**/partners")
    box = page.locator(f"#edit-{partner['code']}-box")
    await box.locator("summary").click()
    await box.get_by_label("电话（话务直转时拨打）").fill("021-12345-9")
    await box.get_by_label("启用").uncheck()
    await screenshot(page, "partners-edit")
    async with page.expect_navigation():
        await box.get_by_role("button", name="保存修改").click()

    row = page.locator(f"#partner-{partner['code']}")
    assert "021-12345-9" in await row.text_content()
    assert "停用" in await row.text_content()
    await screenshot(page, "partners-edited")
    [stored] = [p for p in api(live_server, "GET", "/api/partners", world.admin).json() if p["code"] == partner["code"]]
    assert stored["phone"] == "021-12345-9" and stored["is_active"] is False
    assert page.js_errors == []
