"""Citizens' public pages: the web form, the 办不成事 window, progress look-up and rating."""

from __future__ import annotations

import asyncio
import html
import re
import secrets

import httpx
import pytest

from cases.models import Case, CaseEvent, Notification
from hotline.web.citizen import normalize_phone
from tests.conftest import act


def new_client(app, ip: str | None = None) -> httpx.AsyncClient:
    ip = ip or f"198.51.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 4321)), base_url="http://testserver")


def random_mobile() -> str:
    return "139" + "".join(secrets.choice("0123456789") for _ in range(8))


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no hidden {name} in page"
    return html.unescape(match.group(1))


async def form_tokens(client: httpx.AsyncClient, path: str) -> dict[str, str]:
    r = await client.get(path)
    assert r.status_code == 200
    tokens = {"csrf_token": hidden(r.text, "csrf_token")}
    if 'name="form_id"' in r.text:
        tokens["form_id"] = hidden(r.text, "form_id")
    return tokens


def complaint(**overrides) -> dict[str, str]:
    body = {
        "request_type": "complaint",
        "title": "小区门口路灯不亮",
        "content": "岳麓区橘子洲街道某小区门口的路灯坏了两周，晚上出行很不方便。",
        "address": "岳麓区橘子洲街道某小区",
        "phone": random_mobile(),
        "name": "李女士",
    }
    body.update(overrides)
    return body


def window_form(**overrides) -> dict[str, str]:
    body = {
        "matter": "办理营业执照经营范围变更",
        "place": "岳麓区政务服务中心3号窗口",
        "when": "2025-11-03",
        "refused": "材料齐全，窗口说系统不支持，让我下个月再来。",
        "content": "已经跑了三次。",
        "phone": random_mobile(),
        "name": "",
    }
    body.update(overrides)
    return body


@pytest.fixture
def stored():
    """How many cases, history rows and outbox rows exist: a refused form must add none."""

    async def count() -> tuple[int, int, int]:
        return await Case.all().count(), await CaseEvent.all().count(), await Notification.all().count()

    return count


async def submit(client, path: str, body: dict, tokens: dict | None = None) -> httpx.Response:
    tokens = tokens if tokens is not None else await form_tokens(client, path)
    return await client.post(path, data={**tokens, **body})


def result_keys(page: str) -> tuple[str, str]:
    number = re.search(r'id="case-number">([^<]+)<', page).group(1)
    code = re.search(r'id="query-code">([^<]+)<', page).group(1)
    return number, code


# ---- 诉求提交 ---------------------------------------------------------------------------


async def test_the_form_offers_every_request_type_and_a_csrf_token(client):
    r = await client.get("/submit")
    assert r.status_code == 200
    assert "诉求提交" in r.text and 'name="csrf_token"' in r.text
    for label in ("咨询", "求助", "投诉", "举报", "建议", "表扬"):
        assert f">{label}</option>" in r.text
    assert r.headers["cache-control"] == "no-store"


async def test_a_citizen_files_a_complaint_and_gets_its_number_and_query_code(client, stored):
    before = await stored()
    body = complaint(confidential="1", phone="+86 139-0000-1234".replace("0000", str(secrets.randbelow(9000) + 1000)))
    r = await submit(client, "/submit", body)
    assert r.status_code == 200, r.text
    number, code = result_keys(r.text)
    case = await Case.get(number=number)
    assert case.query_code == code
    assert (case.channel, case.request_type, case.urgency, case.status) == ("web", "complaint", "general", "received")
    assert case.confidential is True
    assert re.fullmatch(r"139[0-9]{8}", case.caller_phone)
    assert case.content == body["content"] and case.caller_name == "李女士"
    assert case.created_by_id is None
    event = await CaseEvent.get(case_id=case.id)
    assert (event.action, event.actor_role, event.actor_name) == ("create", "system", "市民（网上诉求）")
    # The citizen is told the same number and code by SMS.
    sms = await Notification.filter(case_id=case.id, template="case_accepted").first()
    assert sms is not None and code in sms.body
    assert await stored() == (before[0] + 1, before[1] + 1, before[2] + 1)


async def test_a_consultation_runs_on_the_consultation_clock(client):
    r = await submit(client, "/submit", complaint(request_type="consult", title=""))
    case = await Case.get(number=result_keys(r.text)[0])
    assert (case.request_type, case.urgency) == ("consult", "consult")


async def test_with_automatic_routing_on_the_new_case_is_handed_to_routing_after_the_answer(app, settings):
    from dataclasses import replace

    from hotline.web.app import create_app

    routed = []

    class Jobs:
        async def route_soon(self, case):
            routed.append(case.number)

    # Not entered: its lifespan would close the session's database connections.
    routing_app = create_app(replace(settings, auto_route=True))
    routing_app.state.jobs = Jobs()
    async with new_client(routing_app) as client:
        r = await submit(client, "/submit", complaint())
    number = result_keys(r.text)[0]
    assert routed == [number]
    assert (await Case.get(number=number)).routing_state == "pending"


async def test_missing_fields_are_named_in_chinese_and_the_input_is_kept(client, stored):
    before = await stored()
    r = await submit(client, "/submit", {"title": "我的标题", "address": "某路1号", "request_type": "", "content": "", "phone": ""})
    assert r.status_code == 400
    for message in ("请选择诉求类型", "请填写诉求内容", "请填写联系电话", "提交未成功"):
        assert message in r.text
    assert 'value="我的标题"' in r.text and 'value="某路1号"' in r.text
    assert 'aria-invalid="true"' in r.text
    assert await stored() == before


@pytest.mark.parametrize(
    "raw, normalized",
    [
        ("13900001234", "13900001234"),
        ("+86 139 0000 1234", "13900001234"),
        ("８６13900001234", "13900001234"),
        ("0731-88889999", "0731-88889999"),
        ("073188889999", "0731-88889999"),
        ("(010)62345678", "010-62345678"),
        ("0731-88889999-123", "0731-88889999-123"),
        ("12345", None),
        ("1390000123", None),
        ("23900001234", None),
        ("0731-1234", None),
        ("call me", None),
    ],
)
def test_it_accepts_mainland_mobile_and_landline_numbers_only(raw, normalized):
    assert normalize_phone(raw) == normalized


async def test_a_wrong_phone_number_is_refused_with_a_hint(client, stored):
    before = await stored()
    r = await submit(client, "/submit", complaint(phone="12345"))
    assert r.status_code == 400
    assert "请填写正确的手机号码" in r.text and 'value="12345"' in r.text
    assert await stored() == before


async def test_an_overlong_field_is_refused_with_a_clean_chinese_message(client, stored):
    before = await stored()
    r = await submit(client, "/submit", complaint(content="很" * 4001))
    assert r.status_code == 400
    assert "诉求内容不能超过4000字（当前4001字）" in r.text
    r = await submit(client, "/submit", complaint(title="标" * 201))
    assert r.status_code == 400 and "标题不能超过200字" in r.text
    assert await stored() == before


async def test_a_100k_character_field_gets_a_clean_chinese_message_not_an_error(client, stored):
    before = await stored()
    for path, field in (("/submit", "content"), ("/window", "refused"), ("/track", "code")):
        tokens = await form_tokens(client, path)
        r = await client.post(path, data={**tokens, field: "x" * 100_000})
        assert r.status_code == 413, path
        assert "过大" in r.text or "过长" in r.text
    assert await stored() == before


async def test_a_streamed_oversized_form_is_answered_on_the_form_page(client, stored):
    # Without a Content-Length the limit is only found while reading; the form says so itself.
    before = await stored()
    tokens = await form_tokens(client, "/submit")
    body = httpx.QueryParams({**tokens, **complaint(content="x" * 100_000)}).__str__().encode()

    async def chunks():
        for i in range(0, len(body), 8192):
            yield body[i:i + 8192]

    r = await client.post("/submit", content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413
    assert "提交的内容过长" in r.text
    assert await stored() == before


async def test_script_tags_are_shown_as_text_never_run(client):
    evil = "<script>alert('x')</script>"
    r = await submit(client, "/submit", complaint(title=evil, content=evil, phone=""))
    assert r.status_code == 400
    assert "<script>alert" not in r.text
    assert "&lt;script&gt;alert(" in r.text


async def test_a_form_without_or_with_a_wrong_csrf_token_is_refused_and_nothing_is_stored(client, app, stored):
    before = await stored()
    tokens = await form_tokens(client, "/submit")
    r = await client.post("/submit", data={**complaint(), "form_id": tokens["form_id"]})
    assert r.status_code == 403 and "页面已过期" in r.text
    r = await client.post("/submit", data={**complaint(content="保留我的内容"), **tokens, "csrf_token": "forged"})
    assert r.status_code == 403 and "保留我的内容" in r.text
    # Another browser's valid token is still the wrong one here.
    async with new_client(app) as other:
        theirs = await form_tokens(other, "/submit")
    r = await client.post("/submit", data={**complaint(), **theirs})
    assert r.status_code == 403
    r = await client.post("/window", data={**window_form(), "csrf_token": "forged"})
    assert r.status_code == 403
    assert await stored() == before
    # The re-rendered form carries a token that works.
    r = await client.post("/submit", data={**complaint(), "csrf_token": hidden(r.text, "csrf_token")})
    assert r.status_code == 200 and 'id="query-code"' in r.text


async def test_a_double_submitted_form_makes_one_case(client, stored):
    before = await stored()
    tokens = await form_tokens(client, "/submit")
    body = complaint()
    first = await submit(client, "/submit", body, tokens)
    second = await submit(client, "/submit", body, tokens)
    assert first.status_code == second.status_code == 200
    assert result_keys(first.text) == result_keys(second.text)
    assert (await stored())[0] == before[0] + 1


async def test_submissions_are_rate_limited_per_address(app, stored):
    async with new_client(app) as client:
        limit = app.state.settings.citizen_submit_limit
        for _ in range(limit):
            assert (await submit(client, "/submit", complaint())).status_code == 200
        before = await stored()
        r = await submit(client, "/submit", complaint(content="第六件诉求：请保留此内容"))
        assert r.status_code == 429
        assert "提交过于频繁" in r.text and "第六件诉求：请保留此内容" in r.text
        r = await submit(client, "/window", window_form())
        assert r.status_code == 429
        assert await stored() == before


async def test_submissions_are_rate_limited_per_phone_across_addresses(app, stored):
    phone = random_mobile()
    limit = app.state.settings.citizen_submit_limit
    for _ in range(limit):
        async with new_client(app) as client:
            assert (await submit(client, "/submit", complaint(phone=phone))).status_code == 200
    before = await stored()
    async with new_client(app) as client:
        r = await submit(client, "/window", window_form(phone=phone))
        assert r.status_code == 429 and "提交过于频繁" in r.text
        # Another number from the same address is still welcome.
        assert (await submit(client, "/submit", complaint())).status_code == 200
    assert (await stored())[0] == before[0] + 1


# ---- 办不成事反映 -----------------------------------------------------------------------


async def test_a_citizen_files_a_window_form_and_the_answers_are_kept(client, stored):
    before = await stored()
    body = window_form()
    r = await submit(client, "/window", body)
    assert r.status_code == 200, r.text
    assert "办不成事反映已提交" in r.text
    number, code = result_keys(r.text)
    case = await Case.get(number=number)
    assert (case.channel, case.request_type, case.urgency) == ("window", "complaint", "window_simple")
    assert case.details == {
        "window": {"matter": body["matter"], "place": body["place"], "when": "2025-11-03", "refused": body["refused"]}
    }
    assert case.title == "办不成事：办理营业执照经营范围变更"
    assert "遇到的问题：材料齐全" in case.content and "详细情况：已经跑了三次。" in case.content
    assert case.address == body["place"] and case.caller_name == ""
    event = await CaseEvent.get(case_id=case.id)
    assert event.actor_name == "市民（办不成事反映）"
    assert (await stored())[:2] == (before[0] + 1, before[1] + 1)


async def test_the_window_form_names_each_missing_answer(client, stored):
    before = await stored()
    r = await submit(client, "/window", {"matter": "", "place": "", "when": "", "refused": "", "phone": "", "content": "补充"})
    assert r.status_code == 400
    for message in ("请填写想办的事项", "请填写办理地点或部门", "请填写办理时间", "请填写遇到的问题", "请填写联系电话"):
        assert message in r.text
    assert ">补充</textarea>" in r.text
    r = await submit(client, "/window", window_form(when="2999-01-01"))
    assert r.status_code == 400 and "办理时间不能晚于今天" in r.text
    r = await submit(client, "/window", window_form(when="上周三"))
    assert r.status_code == 400 and "年-月-日" in r.text
    assert await stored() == before


# ---- 进度查询 ---------------------------------------------------------------------------


async def replied_case(client, world, make_case, reply: str = "路灯已于今日修复。") -> tuple[str, str]:
    number = (await make_case(caller_name="王五", caller_phone="13912345678", address="某某路88号"))["number"]
    for who, action, body in (
        (world.dispatcher, "dispatch", {"lead_unit_id": world.units["zjj"]}),
        (world.zjj, "sign", {}),
        (world.zjj, "reply", {"text": reply}),
    ):
        r = await act(client, who, number, action, body)
        assert r.status_code == 200, r.text
    case = await Case.get(number=number)
    assert case.status == "replied"
    return number, case.query_code


async def track(client, number: str, code: str) -> httpx.Response:
    tokens = await form_tokens(client, "/track")
    return await client.post("/track", data={**tokens, "number": number, "code": code})


async def test_a_citizen_looks_up_progress_and_sees_the_reply_but_no_personal_data(client, world, make_case):
    number, code = await replied_case(client, world, make_case, reply="<script>alert(1)</script>灯已修好")
    r = await track(client, number, code.lower())
    assert r.status_code == 200
    assert "已答复待回访" in r.text
    for label in ("提交时间", "受理时间", "派单时间", "答复时间"):
        assert label in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;灯已修好" in r.text and "<script>alert" not in r.text
    for private in ("王五", "13912345678", "某某路88号", "楼道灯坏了"):
        assert private not in r.text
    assert f"/rate/{number}?code={code}" in r.text


async def test_a_new_case_shows_it_is_waiting_to_be_accepted(client):
    number, code = result_keys((await submit(client, "/submit", complaint())).text)
    r = await track(client, number, code)
    assert r.status_code == 200 and "待受理" in r.text
    assert "派单时间" not in r.text and "答复内容" not in r.text


async def test_a_wrong_code_looks_exactly_like_a_wrong_number(client, world, make_case):
    number, code = await replied_case(client, world, make_case)
    wrong = "A" * 6 if code != "A" * 6 else "B" * 6
    wrong_code = await track(client, number, wrong)
    wrong_number = await track(client, "19990101-999999", code)
    malformed = await track(client, "not-a-number", "?")
    assert wrong_code.status_code == wrong_number.status_code == malformed.status_code == 404
    strip = lambda page: re.sub(r'name="(csrf_token|number|code)" value="[^"]*"', "", page)  # noqa: E731
    assert strip(wrong_code.text).replace(number, "N") == strip(wrong_number.text).replace("19990101-999999", "N")
    assert "未查询到工单" in wrong_code.text
    assert "已答复待回访" not in wrong_code.text


async def test_failed_lookups_are_rate_limited_per_address(app, world, make_case, client):
    number, code = await replied_case(client, world, make_case)
    async with new_client(app) as guesser:
        for _ in range(app.state.settings.citizen_lookup_limit):
            assert (await track(guesser, number, "ZZZZZZ")).status_code == 404
        r = await track(guesser, number, code)
        assert r.status_code == 429 and "查询失败次数过多" in r.text
        r = await guesser.get(f"/rate/{number}", params={"code": code})
        assert r.status_code == 429
    # Another address still gets through.
    async with new_client(app) as owner:
        assert (await track(owner, number, code)).status_code == 200


async def test_successful_lookups_do_not_count_against_the_address(app, world, make_case, client):
    number, code = await replied_case(client, world, make_case)
    async with new_client(app) as owner:
        for _ in range(app.state.settings.citizen_lookup_limit + 2):
            assert (await track(owner, number, code)).status_code == 200
        assert (await track(owner, number, "ZZZZZZ")).status_code == 404


async def test_parallel_guesses_from_one_address_get_no_more_tries_than_the_limit(app, world, make_case, client):
    number, _ = await replied_case(client, world, make_case)
    limit = app.state.settings.citizen_lookup_limit
    async with new_client(app) as guesser:
        tokens = await form_tokens(guesser, "/track")
        guesses = [f"{i:06d}".translate(str.maketrans("0123456789", "ABCDEFGHJK")) for i in range(limit * 3)]
        answers = await asyncio.gather(
            *(guesser.post("/track", data={**tokens, "number": number, "code": g}) for g in guesses)
        )
    assert sorted(r.status_code for r in answers) == [404] * limit + [429] * (limit * 2)


async def test_a_lookup_without_the_csrf_token_is_refused(client, world, make_case):
    number, code = await replied_case(client, world, make_case)
    r = await client.post("/track", data={"number": number, "code": code})
    assert r.status_code == 403 and "已答复待回访" not in r.text


# ---- 评价 -------------------------------------------------------------------------------


async def test_opening_the_rating_link_changes_nothing(client, world, make_case, stored):
    number, code = await replied_case(client, world, make_case)
    before = await stored()
    for _ in range(3):
        r = await client.get(f"/rate/{number}", params={"code": code, "resolved": "unresolved", "satisfaction": "unsatisfied"})
        assert r.status_code == 200
    assert "路灯已于今日修复。" in r.text and "是否解决" in r.text and "是否满意" in r.text
    case = await Case.get(number=number)
    assert case.status == "replied" and case.callback_attempts == 0
    assert await stored() == before


async def test_the_rating_link_with_a_wrong_code_finds_nothing(client, world, make_case):
    number, _ = await replied_case(client, world, make_case)
    r = await client.get(f"/rate/{number}", params={"code": "ZZZZZZ"})
    assert r.status_code == 404 and "未查询到工单" in r.text and "路灯已于今日修复" not in r.text


async def rating_post(client, number: str, code: str, **fields) -> httpx.Response:
    tokens = await form_tokens(client, "/track")
    return await client.post(f"/rate/{number}", data={"csrf_token": tokens["csrf_token"], "code": code, **fields})


async def test_a_rating_needs_a_confirmation_step(client, world, make_case, stored):
    number, code = await replied_case(client, world, make_case)
    before = await stored()
    r = await rating_post(client, number, code, resolved="resolved", satisfaction="satisfied")
    assert r.status_code == 200
    assert "确认提交" in r.text and 'name="confirm" value="yes"' in r.text
    assert "已解决" in r.text and "满意" in r.text
    assert (await Case.get(number=number)).status == "replied"
    assert await stored() == before

    r = await client.post(f"/rate/{number}", data={
        "csrf_token": hidden(r.text, "csrf_token"), "code": code,
        "resolved": "resolved", "satisfaction": "satisfied", "confirm": "yes",
    })
    assert r.status_code == 200 and "评价已提交" in r.text
    case = await Case.get(number=number)
    assert (case.status, case.callback_contacted, case.callback_resolved, case.callback_satisfaction) == (
        "callback_done", True, "resolved", "satisfied"
    )
    event = await CaseEvent.filter(case_id=case.id).order_by("-id").first()
    assert (event.action, event.actor_role, event.actor_name) == ("record_callback", "system", "市民（网上评价）")
    # A second vote is refused: the case has moved on.
    r = await rating_post(client, number, code, resolved="unresolved", satisfaction="unsatisfied", confirm="yes")
    assert r.status_code == 409 and "已评价" in r.text
    assert (await Case.get(number=number)).status == "callback_done"


async def test_an_unsatisfied_rating_reopens_the_case_for_rehandling(client, world, make_case):
    number, code = await replied_case(client, world, make_case)
    r = await rating_post(client, number, code, resolved="unresolved", satisfaction="unsatisfied", confirm="yes")
    assert r.status_code == 200 and "重新办理" in r.text
    case = await Case.get(number=number)
    assert (case.status, case.callback_resolved, case.callback_satisfaction) == (
        "rehandle_pending", "unresolved", "unsatisfied"
    )
    r = await track(client, number, code)
    assert "待重办" in r.text and "正在重新办理" in r.text


async def test_a_satisfied_but_unresolved_rating_also_reopens_the_case(client, world, make_case):
    number, code = await replied_case(client, world, make_case)
    await rating_post(client, number, code, resolved="unresolved", satisfaction="basically", confirm="yes")
    assert (await Case.get(number=number)).status == "rehandle_pending"


async def test_a_rating_without_a_valid_csrf_token_or_answers_records_nothing(client, world, make_case, stored):
    number, code = await replied_case(client, world, make_case)
    before = await stored()
    r = await client.post(f"/rate/{number}", data={
        "code": code, "resolved": "resolved", "satisfaction": "satisfied", "confirm": "yes",
    })
    assert r.status_code == 403 and "页面已过期" in r.text
    r = await rating_post(client, number, code, resolved="maybe", confirm="yes")
    assert r.status_code == 400
    assert "请选择问题是否解决" in r.text and "请选择满意程度" in r.text
    r = await rating_post(client, number, "ZZZZZZ", resolved="resolved", satisfaction="satisfied", confirm="yes")
    assert r.status_code == 404
    assert (await Case.get(number=number)).status == "replied"
    assert await stored() == before


async def test_only_a_replied_case_can_be_rated(client, world, make_case):
    number, code = result_keys((await submit(client, "/submit", complaint())).text)
    r = await client.get(f"/rate/{number}", params={"code": code})
    assert r.status_code == 200
    assert "当前状态为「待受理」" in r.text and 'name="resolved"' not in r.text
    r = await rating_post(client, number, code, resolved="resolved", satisfaction="satisfied", confirm="yes")
    assert r.status_code == 409
    assert (await Case.get(number=number)).status == "received"
