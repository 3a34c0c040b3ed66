/* The agent console's browser softphone (Twilio Voice JS SDK, vendored under /static/vendor).
 *
 * Without a token (503: the Twilio API key is not configured) the panel says so
 * and stays inert: no Device is made, so the SDK never touches the network.
 * With one, the Device registers to receive calls; 接听 accepts a ringing call,
 * or, when nothing rings, connects through the TwiML App to the caller who has
 * waited longest in the queue. The caller's number goes into the console's
 * caller field, whose own input listener (console.js) loads their history.
 * Caller data only ever reaches the page as textContent or input values.
 */
(function () {
  "use strict";

  var root = document.querySelector("[data-csrf]");
  var panel = document.getElementById("softphone");
  if (!root || !panel) return;
  var CSRF = root.getAttribute("data-csrf");
  var PHONE = /^\+?[0-9][0-9-]{4,19}$/;
  var CALL_SID = /^CA[0-9a-fA-F]{32}$/;
  var STATES = { off: "未登录话机", ready: "话机就绪", ringing: "来电中", talking: "通话中" };

  var statusLine = document.getElementById("sp-status");
  var callerLine = document.getElementById("sp-caller");
  var note = document.getElementById("sp-note");
  var acceptBtn = document.getElementById("sp-accept");
  var hangupBtn = document.getElementById("sp-hangup");
  var muteBtn = document.getElementById("sp-mute");

  var device = null;
  var registered = false;
  var ringing = null;   // an incoming call not yet answered
  var active = null;    // the call in progress

  function api(method, path) {
    return fetch(path, {
      method: method,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": CSRF },
    }).then(
      function (r) {
        return r.json().then(
          function (data) { return { ok: r.ok, status: r.status, data: data }; },
          function () { return { ok: r.ok, status: r.status, data: {} }; }
        );
      },
      function () { return { ok: false, status: 0, data: { message: "网络连接失败" } }; }
    );
  }

  function show(state, text) {
    panel.setAttribute("data-state", state);
    statusLine.textContent = STATES[state];
    acceptBtn.disabled = !(state === "ringing" || (state === "ready" && registered));
    hangupBtn.disabled = !(state === "ringing" || state === "talking");
    muteBtn.disabled = state !== "talking";
    if (state !== "talking") { muteBtn.setAttribute("aria-pressed", "false"); muteBtn.textContent = "静音"; }
    if (text !== undefined) note.textContent = text;
  }

  function idle() {
    ringing = null;
    active = null;
    callerLine.textContent = "";
    show(registered ? "ready" : "off", registered ? "就绪：有来电时会响铃；无来电时点“接听”接通排队最久的市民" : undefined);
  }

  // Into the console's caller field; console.js looks the history up on "input".
  function fillCaller(phone) {
    var field = document.getElementById("f-phone");
    if (!field || !PHONE.test(phone || "") || field.value === phone) return;
    field.value = phone;
    field.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function identify(call) {
    var params = (call && call.parameters) || {};
    var from = String(params.From || "");
    if (PHONE.test(from)) {
      callerLine.textContent = "来电号码：" + from;
      fillCaller(from);
    }
    var sid = String(params.CallSid || "");
    if (!CALL_SID.test(sid)) return;
    lookUpCaller(sid, 5);
  }

  // The queue names the caller a moment after the browser's leg connects: ask again briefly.
  function lookUpCaller(sid, tries) {
    api("GET", "/api/calls/" + sid + "/caller").then(function (res) {
      if (res.ok && !res.data.caller_phone && tries > 1 && (active || ringing)) {
        window.setTimeout(function () { lookUpCaller(sid, tries - 1); }, 1500);
        return;
      }
      if (!res.ok || !res.data.caller_phone) return;
      callerLine.textContent = "来电号码：" + res.data.caller_phone;
      fillCaller(res.data.caller_phone);
      note.textContent = res.data.cases.length ? "该来电人有 " + res.data.cases.length + " 件历史工单，见右侧来电历史" : "该来电人首次来电";
    });
  }

  // outgoing: a call to the queue, whose caller is only known once it is connected.
  function follow(call, outgoing) {
    call.on("accept", function () {
      ringing = null;
      active = call;
      show("talking", outgoing ? "" : undefined);
      if (outgoing) identify(call);
    });
    ["disconnect", "cancel", "reject"].forEach(function (ev) {
      call.on(ev, function () { if (call === active || call === ringing) idle(); });
    });
    call.on("error", function (err) { note.textContent = "通话错误：" + ((err && err.message) || "未知错误"); });
  }

  function fetchToken() {
    return api("POST", "/api/voice/token").then(function (res) {
      if (res.status === 503) return { unconfigured: true };
      if (!res.ok || !res.data.token) throw new Error((res.data && res.data.message) || "请求失败（" + res.status + "）");
      return res.data;
    });
  }

  acceptBtn.addEventListener("click", function () {
    if (ringing) { ringing.accept(); return; }
    if (!device || !registered || active) return;
    show("talking", "正在接通排队等候最久的来电…");
    device.connect().then(function (call) {
      active = call;
      follow(call, true);
    }, function (err) {
      idle();
      note.textContent = "接通失败：" + ((err && err.message) || "未知错误");
    });
  });

  hangupBtn.addEventListener("click", function () {
    if (ringing) ringing.reject();
    else if (active) active.disconnect();
    idle();
  });

  muteBtn.addEventListener("click", function () {
    if (!active) return;
    var muted = !active.isMuted();
    active.mute(muted);
    muteBtn.setAttribute("aria-pressed", String(muted));
    muteBtn.textContent = muted ? "取消静音" : "静音";
  });

  show("off", "正在登录话机…");
  fetchToken().then(function (t) {
    if (t.unconfigured) { show("off", "未配置浏览器话机（TWILIO_API_KEY 等）"); return; }
    if (typeof Twilio === "undefined" || !Twilio.Device) { show("off", "话机组件未加载，请刷新页面"); return; }
    // Every sound the SDK plays comes from this app (hotline/web/sounds.py), never from Twilio's CDN.
    var sounds = {};
    ["incoming", "outgoing", "disconnect", "dtmf0", "dtmf1", "dtmf2", "dtmf3", "dtmf4", "dtmf5", "dtmf6",
      "dtmf7", "dtmf8", "dtmf9", "dtmfs", "dtmfh"].forEach(function (n) { sounds[n] = "/sounds/" + n + ".wav"; });
    device = new Twilio.Device(t.token, { closeProtection: true, tokenRefreshMs: 60000, sounds: sounds });
    device.on("registered", function () { registered = true; if (!ringing && !active) idle(); });
    device.on("unregistered", function () { registered = false; if (!ringing && !active) show("off", "话机已离线"); });
    device.on("error", function (err) { note.textContent = "话机错误：" + ((err && err.message) || "未知错误"); });
    device.on("tokenWillExpire", function () {
      fetchToken().then(function (fresh) {
        if (fresh.token) device.updateToken(fresh.token);
      }).catch(function (err) { note.textContent = "话机令牌续期失败：" + err.message + "，请刷新页面"; });
    });
    device.on("incoming", function (call) {
      if (active || ringing) { call.reject(); return; }
      ringing = call;
      follow(call, false);
      show("ringing", "");
      identify(call);
    });
    device.register().catch(function (err) { show("off", "话机登录失败：" + ((err && err.message) || "未知错误")); });
  }).catch(function (err) {
    show("off", "话机登录失败：" + err.message);
  });
})();
