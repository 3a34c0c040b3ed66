"""The console's browser softphone in a real headless Chromium against a real ``hotline serve``.

The live server has no Twilio API key, so the panel must say the softphone is
not configured and stay inert, while the vendored Voice SDK is still served
from /static and loaded from there: the page asks nothing of any other host.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

SDK = "/static/vendor/twilio-voice-sdk-2.18.5.min.js"


async def test_the_console_shows_an_unconfigured_softphone_without_calling_other_hosts(live_server, page, log_in, screenshot, world):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    await log_in(page, world.agent)
    async with page.expect_response("**/api/voice/token") as token:
        await page.goto("/console")
    assert (await token.value).status == 503

    panel = page.locator("#softphone")
    await panel.get_by_text("未配置浏览器话机（TWILIO_API_KEY 等）").wait_for()
    assert await page.locator("#sp-status").text_content() == "未登录话机"
    for name in ("接听", "挂断", "静音"):
        assert await panel.get_by_role("button", name=name).is_disabled()
    assert await page.evaluate("typeof Twilio !== 'undefined' && typeof Twilio.Device") == "function"
    await page.wait_for_load_state("networkidle")
    await screenshot(page, "console-softphone-unconfigured")

    ours = urlsplit(live_server).netloc
    assert SDK in {urlsplit(u).path for u in requested}
    assert [u for u in requested if urlsplit(u).netloc != ours] == []
    assert page.js_errors == []


def test_the_vendored_sdk_is_served_as_javascript(live_server):
    r = httpx.get(live_server + SDK)
    assert r.status_code == 200
    assert "javascript" in r.headers["content-type"]
    assert b"Twilio.Device" in r.content


def test_no_page_or_script_loads_the_sdk_from_a_cdn():
    from pathlib import Path

    import hotline

    here = Path(hotline.__file__).parent
    for path in [here / "templates" / "softphone.html", here / "static" / "softphone.js"]:
        text = path.read_text(encoding="utf-8")
        assert "twilio.com" not in text and "//" + "cdn" not in text, path


# A stand-in for the SDK's Device, so the configured path runs without Twilio's servers.
FAKE_SDK = """
(function () {
  function Emitter() { this.handlers = {}; }
  Emitter.prototype.on = function (ev, fn) { (this.handlers[ev] = this.handlers[ev] || []).push(fn); };
  Emitter.prototype.emit = function (ev, arg) { (this.handlers[ev] || []).forEach(function (fn) { fn(arg); }); };
  function Call(params) { Emitter.call(this); this.parameters = params; this.muted = false; }
  Call.prototype = Object.create(Emitter.prototype);
  Call.prototype.accept = function () { this.emit("accept", this); };
  Call.prototype.reject = function () { this.emit("reject"); };
  Call.prototype.disconnect = function () { this.emit("disconnect", this); };
  Call.prototype.isMuted = function () { return this.muted; };
  Call.prototype.mute = function (m) { this.muted = m; };
  function Device(token, options) { Emitter.call(this); this.token = token; this.options = options; window.fakeDevice = this; }
  Device.prototype = Object.create(Emitter.prototype);
  Device.prototype.register = function () { var d = this; setTimeout(function () { d.emit("registered"); }, 0); return Promise.resolve(); };
  Device.prototype.updateToken = function (t) { this.token = t; };
  window.Twilio = { Device: Device, Call: Call };
})();
"""


async def test_an_incoming_call_rings_fills_the_caller_and_can_be_answered_muted_and_hung_up(page, log_in, screenshot, world):
    sid = "CA" + "0" * 31 + "1"
    phone = "+8613900001111"
    await page.route(f"**{SDK}", lambda route: route.fulfill(body=FAKE_SDK, content_type="text/javascript"))
    await page.route("**/api/voice/token", lambda route: route.fulfill(
        json={"token": "fake-token", "identity": "user-1", "ttl": 3600}))
    await page.route(f"**/api/calls/{sid}/caller", lambda route: route.fulfill(
        json={"call_sid": sid, "caller_phone": phone, "cases": []}))

    await log_in(page, world.agent)
    await page.goto("/console")
    status = page.locator("#sp-status")
    await page.wait_for_function("document.getElementById('sp-status').textContent === '话机就绪'")
    # Every ring and key tone is the app's own, so the SDK never fetches them from Twilio's CDN.
    tones = await page.evaluate("window.fakeDevice.options.sounds")
    assert len(tones) == 15 and all(url == f"/sounds/{name}.wav" for name, url in tones.items())
    assert await page.evaluate("fetch('/sounds/incoming.wav').then(r => r.headers.get('content-type'))") == "audio/wav"

    async with page.expect_request("**/api/console/history?phone=*") as history:
        await page.evaluate(
            "([sid, phone]) => window.fakeDevice.emit('incoming', new Twilio.Call({CallSid: sid, From: '<b>' + phone}))",
            [sid, phone],
        )
        # A number that is not a phone number is neither shown nor typed anywhere, let alone as HTML.
        assert await status.text_content() == "来电中"
        assert await page.locator("#softphone b").count() == 0
        await page.get_by_role("button", name="接听").click()
    assert "phone=%2B8613900001111" in (await history.value).url
    assert await status.text_content() == "通话中"
    assert await page.get_by_label("来电号码").input_value() == phone
    assert phone in await page.locator("#sp-caller").text_content()
    await screenshot(page, "console-softphone-in-call")

    await page.get_by_role("button", name="静音").click()
    assert await page.get_by_role("button", name="取消静音").get_attribute("aria-pressed") == "true"
    await page.get_by_role("button", name="挂断").click()
    assert await status.text_content() == "话机就绪"
    assert page.js_errors == []


async def test_an_agent_on_a_desk_phone_gets_the_callers_number_and_the_case_is_linked_to_the_call(
        page, log_in, screenshot, world):
    """With a phone line configured, the console follows the call the agent is on (GET /api/calls/current)."""
    caller_sid = "CA" + "0" * 31 + "7"
    phone = "+8613900002222"

    async def with_a_phone_line(route):
        # The live server has no Twilio account; the page is the real one, told a line exists.
        response = await route.fetch()
        html = (await response.text()).replace('data-takes-calls="0"', 'data-takes-calls="1"')
        await route.fulfill(response=response, body=html)

    await page.route("**/console", with_a_phone_line)
    await page.route("**/api/calls/current", lambda route: route.fulfill(json={
        "on_call": True, "call_sid": "CA" + "0" * 31 + "8", "caller_call_sid": caller_sid, "caller_phone": phone}))

    await log_in(page, world.agent)
    async with page.expect_request("**/api/console/history?phone=*") as history:
        await page.goto("/console")
    assert "phone=%2B8613900002222" in (await history.value).url
    assert await page.get_by_label("来电号码").input_value() == phone
    assert phone in await page.locator("#live-call").text_content()
    await screenshot(page, "console-desk-phone-call")

    await page.get_by_label("诉求内容").fill("咨询居住证办理需要哪些材料。")
    await page.get_by_label("直接答复（直接办结时必填）").fill("已告知所需材料及办理地点。")
    async with page.expect_request(lambda r: "/api/cases?" in r.url and r.method == "POST") as created:
        await page.get_by_role("button", name="直接办结").click()
    assert f"call_sid={caller_sid}" in (await created.value).url
    await page.locator("#last-case").wait_for()
    assert page.js_errors == []
