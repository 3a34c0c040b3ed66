"""Citizens in a real browser: file a complaint, file a 办不成事 form, look up progress, rate a reply."""

from __future__ import annotations

import secrets

from cases.models import Case
from tests.conftest import act


def mobile() -> str:
    return "137" + "".join(secrets.choice("0123456789") for _ in range(8))


async def test_a_citizen_files_a_complaint_and_looks_it_up_with_the_number_and_code(app, mobile_page, screenshot):
    page = mobile_page
    await page.goto("/submit")
    await screenshot(page, "1-form")

    # Sent empty: every required field says what is missing, in Chinese.
    await page.get_by_role("button", name="提交诉求").click()
    await page.get_by_text("请填写诉求内容").wait_for()
    assert await page.get_by_text("请选择诉求类型").is_visible()
    assert await page.get_by_text("请填写联系电话").is_visible()
    await screenshot(page, "2-missing-fields")

    await page.get_by_label("诉求类型").select_option(label="投诉")
    await page.get_by_label("标题").fill("<script>alert('x')</script>夜间施工噪音")
    await page.get_by_label("诉求内容").fill("岳麓区某工地连续一周夜里十二点后还在施工，噪音很大，影响休息。")
    await page.get_by_label("事发地址").fill("岳麓区橘子洲街道某工地")
    phone = mobile()
    await page.get_by_label("联系电话").fill(phone)
    await page.get_by_label("姓名").fill("赵先生")
    await page.get_by_label("申请保密").check()
    await page.get_by_role("button", name="提交诉求").click()

    await page.get_by_role("heading", name="提交成功").wait_for()
    number = (await page.locator("#case-number").inner_text()).strip()
    code = (await page.locator("#query-code").inner_text()).strip()
    await screenshot(page, "3-result")
    assert page.js_errors == []

    case = await Case.get(number=number)
    assert (case.channel, case.request_type, case.caller_phone, case.confidential) == ("web", "complaint", phone, True)
    assert case.title == "<script>alert('x')</script>夜间施工噪音"

    await page.get_by_role("link", name="查询办理进度").click()
    assert await page.get_by_label("工单号").input_value() == number
    await page.get_by_label("查询码").fill(code)
    await page.get_by_role("button", name="查询").click()
    await page.locator("#status-label").wait_for()
    assert await page.locator("#status-label").inner_text() == "待受理"
    text = await page.locator("main").inner_text()
    assert "赵先生" not in text and phone not in text
    await screenshot(page, "4-progress")


async def test_a_citizen_files_a_window_form(app, mobile_page, screenshot):
    page = mobile_page
    await page.goto("/window")
    await screenshot(page, "1-form")
    await page.get_by_label("想办的事项").fill("申领居住证")
    await page.get_by_label("办理地点或部门").fill("岳麓区政务服务中心5号窗口")
    await page.get_by_label("办理时间").fill("2025-11-10")
    await page.get_by_label("遇到的问题").fill("材料都带齐了，窗口说要先开社区证明，社区又说不用开，来回跑了三趟。")
    await page.get_by_label("联系电话").fill("0731-88776655")
    await page.get_by_role("button", name="提交反映").click()
    await page.get_by_role("heading", name="提交成功").wait_for()
    await screenshot(page, "2-result")
    number = (await page.locator("#case-number").inner_text()).strip()
    case = await Case.get(number=number)
    assert (case.channel, case.request_type, case.urgency) == ("window", "complaint", "window_simple")
    assert case.details["window"]["matter"] == "申领居住证"
    assert case.caller_phone == "0731-88776655"


async def test_a_citizen_rates_a_replied_case_and_it_goes_back_for_rehandling(
    app, client, world, make_case, page, screenshot
):
    number = (await make_case())["number"]
    for who, action, body in (
        (world.dispatcher, "dispatch", {"lead_unit_id": world.units["zjj"]}),
        (world.zjj, "sign", {}),
        (world.zjj, "reply", {"text": "经现场查看，楼道灯已更换，可以正常使用。"}),
    ):
        r = await act(client, who, number, action, body)
        assert r.status_code == 200, r.text
    code = (await Case.get(number=number)).query_code

    await page.goto(f"/track?number={number}")
    await page.get_by_label("查询码").fill(code)
    await page.get_by_role("button", name="查询").click()
    await page.locator("#reply").wait_for()
    assert "楼道灯已更换" in await page.locator("#reply").inner_text()
    await screenshot(page, "1-progress-with-reply")

    await page.get_by_role("link", name="评价办理结果").click()
    await page.get_by_role("heading", name="评价办理结果").wait_for()
    await screenshot(page, "2-rating-form")
    assert (await Case.get(number=number)).status == "replied"  # opening the link voted nothing

    await page.get_by_label("未解决").check()
    await page.get_by_label("不满意").check()
    await page.get_by_role("button", name="下一步").click()
    await page.get_by_role("button", name="确认提交").wait_for()
    assert await page.locator("#confirm-satisfaction").inner_text() == "不满意"
    await screenshot(page, "3-confirm")
    assert (await Case.get(number=number)).status == "replied"

    await page.get_by_role("button", name="确认提交").click()
    await page.get_by_role("heading", name="评价已提交").wait_for()
    await screenshot(page, "4-done")
    case = await Case.get(number=number)
    assert (case.status, case.callback_resolved, case.callback_satisfaction) == (
        "rehandle_pending", "unresolved", "unsatisfied"
    )
    assert page.js_errors == []
