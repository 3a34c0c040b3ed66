"""The outbox for administrators: the /admin/outbox page and GET /api/notifications."""

from __future__ import annotations

import secrets
import uuid

from cases.models import Notification, User
from tests.hotline.web.test_pages import log_in


def new_number() -> str:
    return f"137{secrets.randbelow(10**8):08d}"


def masked(number: str) -> str:
    return number[:3] + "****" + number[-4:]


async def sms(number: str, **fields) -> Notification:
    return await Notification.create(
        key=f"outbox-page-test:{uuid.uuid4().hex}", recipient_kind="citizen", channel="sms", address=number,
        template=fields.pop("template", "reply_ready"), body="【12345】……", **fields,
    )


async def test_an_admin_sees_the_messages_newest_first_with_chinese_labels(client, world, make_case):
    number = new_number()
    case = await make_case(caller_phone=number)
    failed = await sms(new_number(), status="failed", attempts=1, error="21211 The 'To' number is not valid")
    await log_in(client, world.admin)

    r = await client.get("/admin/outbox")

    assert r.status_code == 200
    html = r.text
    assert "<h1>消息发送记录</h1>" in html
    assert "受理告知" in html and "答复告知" in html and "短信" in html
    assert "待发送" in html and "发送失败" in html
    assert "21211 The &#39;To&#39; number is not valid" in html
    assert masked(number) in html and number not in html
    assert f'<a href="/cases/{case["number"]}">{case["number"]}</a>' in html
    assert html.index(masked(failed.address)) < html.index(masked(number))


async def test_a_staff_recipient_is_shown_by_name(client, world):
    user = await User.get(username=world.zjj.username)
    await Notification.create(
        key=f"outbox-page-test:{uuid.uuid4().hex}", recipient_kind="user", user_id=user.id, channel="inbox",
        template="dispatched", body="新工单", status="delivered",
    )
    await log_in(client, world.admin)

    html = (await client.get("/admin/outbox")).text

    assert "zjj用户" in html and "站内消息" in html and "已送达" in html and "派单通知" in html


async def test_the_list_can_be_filtered_by_status(client, world):
    failed, pending = await sms(new_number(), status="failed"), await sms(new_number())
    await log_in(client, world.admin)

    html = (await client.get("/admin/outbox", params={"status": "failed"})).text

    assert masked(failed.address) in html and masked(pending.address) not in html
    assert '<option value="failed" selected>发送失败</option>' in html


async def test_an_unknown_filter_or_page_shows_the_first_page_of_everything(client, world):
    await log_in(client, world.admin)

    for params in ({"status": "bogus"}, {"page": "0"}, {"page": "x" * 50}, {"page": "9" * 5000}):
        r = await client.get("/admin/outbox", params=params)
        assert r.status_code == 200 and "第 1 /" in r.text


async def test_the_list_shows_fifty_messages_a_page(client, world):
    oldest = await sms(new_number())
    newer = [await sms(new_number()) for _ in range(50)]
    await log_in(client, world.admin)

    first = (await client.get("/admin/outbox")).text
    second = (await client.get("/admin/outbox", params={"page": "2"})).text

    assert masked(oldest.address) not in first and masked(oldest.address) in second
    assert all(masked(n.address) in first for n in newer)
    assert '<a href="/admin/outbox?page=2">下一页</a>' in first
    assert '<a href="/admin/outbox?page=1">上一页</a>' in second


async def test_a_units_handler_is_refused_the_outbox_page(client, world):
    await log_in(client, world.zjj)

    r = await client.get("/admin/outbox")

    assert r.status_code == 403
    assert "无权访问" in r.text and "<table>" not in r.text


async def test_the_outbox_page_sends_a_visitor_to_the_login_page(client):
    r = await client.get("/admin/outbox", follow_redirects=False)

    assert r.status_code == 303 and r.headers["location"] == "/login"


async def test_the_api_lists_notifications_for_an_admin(client, world):
    number = new_number()
    row = await sms(number, status="failed", attempts=2, error="30003 Unreachable destination handset")

    r = await client.get("/api/notifications", params={"status": "failed"}, headers=world.admin.headers)

    assert r.status_code == 200
    body = r.json()
    assert body["page"] == 1 and body["per_page"] == 50 and body["total"] >= 1
    assert all(item["status"] == "failed" for item in body["items"])
    [item] = [i for i in body["items"] if i["id"] == row.id]
    assert item["recipient"] == masked(number) and number not in r.text
    assert item["status_label"] == "发送失败" and item["template_label"] == "答复告知"
    assert item["attempts"] == 2 and item["error"] == "30003 Unreachable destination handset"
    assert "body" not in item


async def test_the_api_refuses_everyone_but_admins(client, world):
    for person in (world.agent, world.dispatcher, world.leader, world.zjj):
        r = await client.get("/api/notifications", headers=person.headers)
        assert r.status_code == 403, person.role
    assert (await client.get("/api/notifications")).status_code == 401


async def test_the_api_rejects_an_unknown_status_or_page(client, world):
    for params in ({"status": "bogus"}, {"page": "0"}, {"page": "1.0"}, {"page": "x"}, {"extra": "1"}):
        r = await client.get("/api/notifications", params=params, headers=world.admin.headers)
        assert r.status_code == 422, params
