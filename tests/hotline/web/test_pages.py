"""The server-rendered pages: a Chinese login form with CSRF, the case list and a case's history."""

from __future__ import annotations

import re

from tests.conftest import act

CSRF_FIELD = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]+)">')


def csrf_from(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "no csrf_token field in the page"
    return match.group(1)


async def login_form(client) -> str:
    r = await client.get("/login")
    assert r.status_code == 200
    return csrf_from(r.text)


async def log_in(client, person) -> None:
    csrf = await login_form(client)
    r = await client.post("/login", data={"username": person.username, "password": person.password, "csrf_token": csrf})
    assert r.status_code == 303, r.text


async def test_the_login_page_is_a_chinese_form_with_a_csrf_field(client):
    r = await client.get("/login")

    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<html lang="zh-CN">' in r.text
    assert "<h1>登录</h1>" in r.text
    assert "用户名" in r.text and "密码" in r.text
    assert '<form method="post" action="/login">' in r.text
    assert len(csrf_from(r.text)) >= 20


async def test_logging_in_without_the_csrf_field_is_a_403_page(client, world):
    await login_form(client)

    r = await client.post("/login", data={"username": world.agent.username, "password": world.agent.password})

    assert r.status_code == 403
    assert "页面已过期" in r.text
    assert (await client.get("/", follow_redirects=False)).status_code == 303


async def test_logging_in_with_a_wrong_csrf_field_is_a_403_page(client, world):
    await login_form(client)

    r = await client.post(
        "/login", data={"username": world.agent.username, "password": world.agent.password, "csrf_token": "forged"}
    )

    assert r.status_code == 403
    assert (await client.get("/", follow_redirects=False)).headers["location"] == "/login"


async def test_a_csrf_field_from_another_browser_is_refused(app, client, world):
    import httpx

    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 4321))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as attacker:
        foreign = await login_form(attacker)
    await login_form(client)

    r = await client.post(
        "/login", data={"username": world.agent.username, "password": world.agent.password, "csrf_token": foreign}
    )

    assert r.status_code == 403


async def test_the_right_credentials_redirect_to_the_case_list(client, world):
    csrf = await login_form(client)

    r = await client.post(
        "/login", data={"username": world.agent.username, "password": world.agent.password, "csrf_token": csrf}
    )

    assert r.status_code == 303
    assert r.headers["location"] == "/"
    assert "hotline_session" in r.cookies
    # A fresh session: the token from before the login is no longer valid.
    home = await client.get("/")
    assert csrf_from(home.text) != csrf


async def test_a_wrong_password_shows_the_form_again_with_an_error(client, world):
    csrf = await login_form(client)

    r = await client.post("/login", data={"username": world.agent.username, "password": "nope-nope-1", "csrf_token": csrf})

    assert r.status_code == 401
    assert "用户名或密码错误" in r.text
    assert csrf_from(r.text)


async def test_the_login_form_is_throttled_too(client, world):
    csrf = await login_form(client)
    for _ in range(5):
        await client.post("/login", data={"username": world.street.username, "password": "nope-nope-1", "csrf_token": csrf})

    r = await client.post(
        "/login", data={"username": world.street.username, "password": world.street.password, "csrf_token": csrf}
    )

    assert r.status_code == 429
    assert "登录失败次数过多" in r.text


async def test_the_case_list_needs_a_login(client):
    r = await client.get("/")

    assert r.status_code == 303
    assert r.headers["location"] == "/login"


async def test_the_case_list_shows_the_cases(client, world, make_case):
    case = await make_case(title=f"井盖缺失{world.suffix}")
    await log_in(client, world.agent)

    r = await client.get("/")

    assert r.status_code == 200
    assert f'<a href="/cases/{case["number"]}">{case["number"]}</a>' in r.text
    assert f"井盖缺失{world.suffix}" in r.text
    assert "待受理" in r.text


async def test_the_case_list_searches(client, world, make_case):
    wanted = await make_case(title=f"噪音扰民{world.suffix}")
    other = await make_case(title=f"路灯不亮{world.suffix}")
    await log_in(client, world.agent)

    r = await client.get("/", params={"q": f"噪音扰民{world.suffix}"})

    assert wanted["number"] in r.text
    assert other["number"] not in r.text
    assert "共 1 件" in r.text


async def test_a_handler_sees_only_the_units_cases(client, world, make_case):
    theirs = await make_case(title=f"归住建局{world.suffix}")
    others = await make_case(title=f"不归住建局{world.suffix}")
    await act(client, world.dispatcher, theirs["number"], "dispatch", {"lead_unit_id": world.units["zjj"]})
    await log_in(client, world.zjj)

    r = await client.get("/")

    assert theirs["number"] in r.text
    assert others["number"] not in r.text
    assert (await client.get(f"/cases/{others['number']}")).status_code == 404


async def test_text_from_citizens_is_escaped(client, world, make_case):
    case = await make_case(title="<script>alert(1)</script>", content="<img src=x onerror=alert(1)>")
    await log_in(client, world.agent)

    listing = (await client.get("/")).text
    page = (await client.get(f"/cases/{case['number']}")).text

    for html in (listing, page):
        assert "<script>alert(1)</script>" not in html
        assert "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_a_case_page_shows_its_history(client, world, make_case):
    case = await make_case()
    await act(client, world.dispatcher, case["number"], "dispatch", {"lead_unit_id": world.units["zjj"]})
    await act(client, world.zjj, case["number"], "sign")
    await log_in(client, world.agent)

    r = await client.get(f"/cases/{case['number']}")

    assert r.status_code == 200
    assert f"工单 {case['number']}" in r.text
    assert "流转记录" in r.text
    rows = re.findall(r"<tr><td>[^<]+</td><td>(\w+)</td><td>([^<]+)</td>", r.text)
    assert [action for action, _ in rows] == ["create", "dispatch", "sign"]
    assert rows[2][1] == "zjj用户（handler）"
    assert "待受理 → 待签收" in r.text
    assert "待签收 → 办理中" in r.text


async def test_an_unknown_or_malformed_case_number_is_a_404_page(client, world):
    await log_in(client, world.agent)

    for number in ("20000101-000001", "not-a-number", "x" * 300):
        r = await client.get(f"/cases/{number}")
        assert r.status_code == 404, number
        assert "工单不存在" in r.text


async def test_logging_out_needs_the_csrf_field_and_ends_the_session(client, world):
    await log_in(client, world.agent)
    home = await client.get("/")

    refused = await client.post("/logout", data={})
    assert (await client.get("/")).status_code == 200

    r = await client.post("/logout", data={"csrf_token": csrf_from(home.text)})

    assert refused.status_code == 303
    assert r.status_code == 303
    assert r.headers["location"] == "/login"
    assert (await client.get("/")).status_code == 303
