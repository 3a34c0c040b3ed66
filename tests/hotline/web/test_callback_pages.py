"""The manual 回访 screen: agents see who is due, call, and record the result with CSRF."""

from __future__ import annotations

from cases import states as s
from cases.models import Case, PhoneReveal
from tests.hotline.test_callbacks import callback_events, new_phone, replied_case


async def test_an_agent_sees_the_cases_due_for_callback_with_the_reply(client, world, make_case, login):
    case = await replied_case(client, world, make_case, caller_phone=new_phone())
    await login(world.agent)

    r = await client.get(f"/callbacks?q={case.number}")
    by_phone = await client.get(f"/callbacks?q={case.caller_phone}")

    assert r.status_code == by_phone.status_code == 200 and case.number in by_phone.text
    assert case.number in r.text and "路灯已修复。" in r.text and case.caller_phone in r.text


async def test_the_agent_records_a_satisfied_callback(client, world, make_case, login):
    case = await replied_case(client, world, make_case, caller_phone=new_phone())
    csrf = await login(world.agent)

    r = await client.post(f"/callbacks/{case.number}", data={
        "csrf_token": csrf, "reached": "yes", "resolved": "resolved", "satisfaction": "satisfied", "note": "电话回访"})

    assert r.status_code == 303 and r.headers["location"] == f"/callbacks?done={case.number}"
    await case.refresh_from_db()
    assert case.status == s.CALLBACK_DONE and case.callback_contacted is True
    [event] = await callback_events(case)
    assert event.actor_role == "agent" and event.payload["note"] == "电话回访"


async def test_an_unsatisfied_result_reopens_the_case(client, world, make_case, login):
    case = await replied_case(client, world, make_case, caller_phone=new_phone())
    csrf = await login(world.dispatcher)

    await client.post(f"/callbacks/{case.number}", data={
        "csrf_token": csrf, "reached": "yes", "resolved": "partly", "satisfaction": "unsatisfied"})

    await case.refresh_from_db()
    assert case.status == s.REHANDLE_PENDING


async def test_not_reaching_the_citizen_counts_an_attempt_and_keeps_the_case_waiting(client, world, make_case, login):
    case = await replied_case(client, world, make_case, caller_phone=new_phone())
    csrf = await login(world.agent)

    r = await client.post(f"/callbacks/{case.number}", data={"csrf_token": csrf, "reached": "no"})

    assert r.status_code == 303
    await case.refresh_from_db()
    assert case.status == s.REPLIED and case.callback_attempts == 1 and case.callback_contacted is False


async def test_it_refuses_a_result_without_csrf(client, world, make_case, login):
    case = await replied_case(client, world, make_case, caller_phone=new_phone())
    await login(world.agent)
    form = {"reached": "yes", "resolved": "resolved", "satisfaction": "satisfied"}

    missing = await client.post(f"/callbacks/{case.number}", data=form)
    wrong = await client.post(f"/callbacks/{case.number}", data={**form, "csrf_token": "forged"})

    assert missing.status_code == wrong.status_code == 403
    await case.refresh_from_db()
    assert case.status == s.REPLIED and await callback_events(case) == []


async def test_a_reached_citizen_needs_both_answers(client, world, make_case, login):
    case = await replied_case(client, world, make_case, caller_phone=new_phone())
    csrf = await login(world.agent)

    r = await client.post(f"/callbacks/{case.number}", data={"csrf_token": csrf, "reached": "yes", "resolved": "resolved"})

    assert r.status_code == 422 and "是否满意" in r.text
    await case.refresh_from_db()
    assert case.status == s.REPLIED


async def test_a_confidential_number_is_masked_until_revealed_and_the_reveal_is_logged(client, world, make_case, login):
    phone = new_phone()
    case = await replied_case(client, world, make_case, caller_phone=phone, confidential=True)
    csrf = await login(world.agent)

    listed = await client.get(f"/callbacks?q={case.number}")
    assert phone not in listed.text and phone[:3] + "****" + phone[-4:] in listed.text

    refused = await client.post(f"/callbacks/{case.number}/reveal", data={"reason": "回访"})
    assert refused.status_code == 403 and not await PhoneReveal.exists(case_id=case.id)

    revealed = await client.post(f"/callbacks/{case.number}/reveal", data={"csrf_token": csrf, "reason": "电话回访"})
    assert revealed.status_code == 200 and phone in revealed.text
    [log] = await PhoneReveal.filter(case_id=case.id)
    assert log.reason == "电话回访"


async def test_units_and_leaders_may_not_use_the_callback_screen(client, world, make_case, login):
    case = await replied_case(client, world, make_case, caller_phone=new_phone())
    csrf = await login(world.zjj)

    listed = await client.get("/callbacks")
    posted = await client.post(f"/callbacks/{case.number}", data={
        "csrf_token": csrf, "reached": "yes", "resolved": "resolved", "satisfaction": "satisfied"})

    assert listed.status_code == posted.status_code == 403 and case.number not in listed.text
    await case.refresh_from_db()
    assert case.status == s.REPLIED


async def test_anonymous_visitors_are_sent_to_login(client):
    r = await client.get("/callbacks")
    assert r.status_code == 303 and r.headers["location"] == "/login"


async def test_a_case_no_longer_waiting_is_refused_with_its_state(client, world, make_case, login):
    case = await replied_case(client, world, make_case, caller_phone=new_phone())
    csrf = await login(world.agent)
    form = {"csrf_token": csrf, "reached": "yes", "resolved": "resolved", "satisfaction": "satisfied"}
    await client.post(f"/callbacks/{case.number}", data=form)

    again = await client.post(f"/callbacks/{case.number}", data=form)

    assert again.status_code == 409 and "已回访待归档" in again.text
    assert len(await callback_events(await Case.get(id=case.id))) == 1
