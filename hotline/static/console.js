/* The working screens' script: the agent console, the dispatcher queue, the handler workbench.
 *
 * Every change goes through the JSON API with the session cookie and the
 * X-CSRF-Token header. Typed text is kept in sessionStorage until the action it
 * belongs to has succeeded, so a reload, a failed request or an expired
 * session never costs the agent what the caller just said. User text is only
 * ever put into the page as textContent, never as HTML.
 */
(function () {
  "use strict";

  var root = document.querySelector("[data-csrf]");
  if (!root) return;
  var CSRF = root.getAttribute("data-csrf");
  var PAGE = root.getAttribute("data-page");
  var STORE = "hotline:" + PAGE + ":" + (root.getAttribute("data-user") || "") + ":";

  // ---- helpers -------------------------------------------------------------------------

  function api(method, path, body) {
    var opts = {
      method: method,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": CSRF },
    };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(path, opts).then(
      function (r) {
        return r.json().then(
          function (data) { return { ok: r.ok, status: r.status, data: data }; },
          function () { return { ok: r.ok, status: r.status, data: {} }; }
        );
      },
      function () { return { ok: false, status: 0, data: { message: "网络连接失败，内容已保留，请稍后重试" } }; }
    );
  }

  function errorText(res) {
    var d = res.data || {};
    if (res.status === 401) return "登录已过期：请在新标签页重新登录后再提交，已填内容不会丢失";
    var m = d.message || "请求失败（" + res.status + "）";
    if (d.errors && d.errors.length) {
      m += "：" + d.errors.map(function (e) { return (FIELD_LABELS[e.field] || e.field) + " " + e.message; }).join("；");
    }
    return m;
  }

  var FIELD_LABELS = {
    content: "内容", title: "标题", caller_phone: "来电号码", caller_name: "来电人", address: "地址",
    answer: "答复内容", text: "答复内容", lead_unit_id: "主办单位", co_unit_ids: "协办单位",
    primary_number: "主工单号", reason: "理由", days: "延期天数", reason_code: "退单原因", note: "备注",
    partner_code: "合作热线", summary: "转办摘要", partner_ref: "对方工单号", result: "办理结果", code: "代码",
    name: "名称", phone: "电话", intake_url: "接口地址", secret_env: "密钥环境变量", is_active: "启用",
  };

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "class") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function say(node, text, kind) {
    if (!node) return;
    node.textContent = text;
    node.className = "msg " + (kind || "");
  }

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      var args = arguments;
      clearTimeout(timer);
      timer = setTimeout(function () { fn.apply(null, args); }, ms);
    };
  }

  function pct(x) { return Math.round((x || 0) * 100) + "%"; }

  function store(key, value) {
    try {
      if (value === null) sessionStorage.removeItem(STORE + key);
      else sessionStorage.setItem(STORE + key, JSON.stringify(value));
    } catch (e) { /* storage full or disabled: typing still works */ }
  }

  function stored(key) {
    try { return JSON.parse(sessionStorage.getItem(STORE + key) || "null"); } catch (e) { return null; }
  }

  // ---- forms whose typed text survives reloads ------------------------------------------

  // Typed fields: what is kept across reloads (hidden values come from the page itself).
  function fieldsOf(form) {
    return namedFields(form).filter(function (f) { return f.type !== "hidden"; });
  }

  function namedFields(form) {
    return Array.prototype.filter.call(form.elements, function (f) {
      return f.name && f.type !== "submit" && f.type !== "button";
    });
  }

  function readKept(form) {
    var out = {};
    fieldsOf(form).forEach(function (f) {
      if (f.type === "checkbox") out[f.name] = f.checked;
      else if (f.multiple) out[f.name] = Array.prototype.filter.call(f.options, function (o) { return o.selected; }).map(function (o) { return o.value; });
      else out[f.name] = f.value;
    });
    return out;
  }

  function restoreKept(form, saved) {
    if (!saved) return;
    fieldsOf(form).forEach(function (f) {
      if (!(f.name in saved)) return;
      var v = saved[f.name];
      if (f.type === "checkbox") f.checked = !!v;
      else if (f.multiple) Array.prototype.forEach.call(f.options, function (o) { o.selected = v.indexOf(o.value) >= 0; });
      else if (v !== "" || !f.value) f.value = v;
    });
  }

  function keep(form) {
    var key = "form:" + form.id;
    var saved = stored(key);
    restoreKept(form, saved);
    // Restored text inside a folded section is shown, not hidden away.
    var fold = form.closest("details");
    if (fold && saved && fieldsOf(form).some(function (f) { return f.tagName !== "SELECT" && f.type !== "number" && saved[f.name]; })) fold.open = true;
    form.addEventListener("input", function () { store(key, readKept(form)); });
    form.addEventListener("change", function () { store(key, readKept(form)); });
    return function forget() { store(key, null); };
  }

  // The JSON body of an action form: typed by each field's data-type.
  function payloadOf(form) {
    var body = {};
    namedFields(form).forEach(function (f) {
      var type = f.getAttribute("data-type") || "text";
      if (type === "skip") return;
      if (f.type === "checkbox") body[f.name] = f.checked;
      else if (type === "int") { if (f.value !== "") body[f.name] = parseInt(f.value, 10); }
      else if (type === "int-list") {
        body[f.name] = Array.prototype.filter.call(f.options, function (o) { return o.selected && o.value; })
          .map(function (o) { return parseInt(o.value, 10); });
      } else body[f.name] = f.value;
    });
    return body;
  }

  // Queue and workbench: each row's forms post to the API and reload on success.
  function wireActionForms() {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-action]"), function (form) {
      var forget = form.id ? keep(form) : function () {};
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var msg = form.querySelector(".msg") || form.parentNode.querySelector(".msg");
        var confirmText = form.getAttribute("data-confirm");
        if (confirmText && !window.confirm(confirmText)) return;
        var buttons = form.querySelectorAll("button");
        Array.prototype.forEach.call(buttons, function (b) { b.disabled = true; });
        say(msg, "正在提交…", "busy");
        var method = (form.getAttribute("data-method") || "POST").toUpperCase();
        api(method, form.getAttribute("data-action"), payloadOf(form)).then(function (res) {
          Array.prototype.forEach.call(buttons, function (b) { b.disabled = false; });
          if (!res.ok) { say(msg, errorText(res), "error"); return; }
          forget();
          // Done, but with something the user must act on (a live call that could not be moved).
          if (res.data && res.data.error) {
            say(msg, (form.getAttribute("data-done") || "已完成") + "，但" + res.data.error + "。请刷新页面查看", "error");
            return;
          }
          say(msg, (form.getAttribute("data-done") || "已完成") + "，正在刷新…", "ok");
          setTimeout(function () { window.location.reload(); }, 400);
        });
      });
    });
  }

  // ---- the agent console ---------------------------------------------------------------

  function consolePage() {
    var form = document.getElementById("case-form");
    var msg = document.getElementById("console-msg");
    var forget = keep(form);
    var f = function (name) { return form.elements[name]; };
    var draft = stored("draft") || newDraft();
    var lastSuggestion = null;
    var seq = 0;

    function newDraft() {
      var bytes = new Uint8Array(12);
      (window.crypto || window.msCrypto).getRandomValues(bytes);
      var id = Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
      var d = { source_id: "console-" + id, number: null };
      store("draft", d);
      return d;
    }

    // An agent's own choice of category or unit is never overwritten by a later suggestion.
    ["category_l1", "lead_unit_id", "co_unit_ids"].forEach(function (name) {
      f(name).addEventListener("change", function () { f(name).setAttribute("data-touched", "1"); });
      f(name).addEventListener("input", function () { f(name).setAttribute("data-touched", "1"); });
    });

    // ---- caller history ----
    var historyBox = document.getElementById("history");
    var lookUp = debounce(function () {
      var phone = f("caller_phone").value.trim();
      if (!/^\+?[0-9][0-9-]{4,19}$/.test(phone)) { clear(historyBox); historyBox.appendChild(el("p", { class: "hint", text: "输入来电号码后显示该号码的历史工单" })); return; }
      api("GET", "/api/console/history?phone=" + encodeURIComponent(phone)).then(function (res) {
        clear(historyBox);
        if (!res.ok) { historyBox.appendChild(el("p", { class: "error", text: errorText(res) })); return; }
        if (!res.data.items.length) { historyBox.appendChild(el("p", { text: "该号码没有历史工单（首次来电）" })); return; }
        historyBox.appendChild(el("p", { text: "共 " + res.data.total + " 件历史工单" }));
        var list = el("ul", { class: "plain" });
        res.data.items.forEach(function (c) {
          list.appendChild(el("li", {}, [
            el("a", { href: "/cases/" + c.number, target: "_blank", rel: "noopener", text: c.number }),
            " ", el("span", { class: "tag", text: c.status_label }), " ",
            el("span", { text: c.title }), " ",
            el("small", { text: c.created_at.slice(0, 10) + (c.confidential ? " · 保密 " + c.caller_phone : "") }),
          ]));
        });
        historyBox.appendChild(list);
      });
    }, 400);
    f("caller_phone").addEventListener("input", lookUp);

    // ---- the call in progress ----
    // Whether the agent answered on their own phone or in the browser, the
    // server knows which caller the queue handed them; the case made during
    // the call is linked to that caller's call log.
    var liveCall = "";
    var callLine = document.getElementById("live-call");
    function pollCall() {
      if (document.visibilityState === "hidden") return;
      api("GET", "/api/calls/current").then(function (res) {
        if (!res.ok) return;
        var d = res.data;
        if (!d.on_call) {
          if (liveCall) { liveCall = ""; if (callLine) callLine.textContent = ""; }
          return;
        }
        if (d.caller_call_sid === liveCall) return;
        liveCall = d.caller_call_sid;
        if (callLine) callLine.textContent = "通话中：" + (d.caller_phone || "号码未显示");
        var phone = f("caller_phone");
        if (d.caller_phone && !phone.value.trim()) {
          phone.value = d.caller_phone;
          phone.dispatchEvent(new Event("input", { bubbles: true }));
        }
      });
    }
    if (root.getAttribute("data-takes-calls") === "1") {
      pollCall();
      window.setInterval(pollCall, 4000);
    }

    // ---- suggestions while typing ----
    var box = document.getElementById("suggestion");
    var answersBox = document.getElementById("answers");
    var dupBox = document.getElementById("duplicates");
    var status = document.getElementById("suggest-status");

    function unitName(u) { return u ? u.name : "（无目录匹配，由派单员决定）"; }

    function choose(category, unit) {
      f("category_l1").value = category || "";
      f("category_l1").setAttribute("data-touched", "1");
      if (unit) { f("lead_unit_id").value = String(unit.id); f("lead_unit_id").setAttribute("data-touched", "1"); }
      store("form:" + form.id, readKept(form));
    }

    function render(s) {
      lastSuggestion = s;
      clear(box);
      var place = [s.place.district_name, s.place.street_name].filter(Boolean).join(" ") || "未识别";
      var dl = el("dl", { class: "facts" }, [
        el("dt", { text: "建议分类" }), el("dd", { id: "suggested-category", class: "big", text: s.category || "—" }),
        el("dt", { text: "置信度" }), el("dd", { id: "suggested-confidence", text: pct(s.confidence) + (s.auto ? "（可直派）" : "（需派单员确认）") }),
        el("dt", { text: "属地" }), el("dd", { id: "suggested-place", text: place + (s.place.district_code ? "（" + pct(s.place.confidence) + "）" : "") }),
        el("dt", { text: "主办单位" }), el("dd", { id: "suggested-unit", class: "big", text: unitName(s.lead_unit) }),
        el("dt", { text: "协办单位" }), el("dd", { text: s.co_units.map(function (u) { return u.name; }).join("、") || "—" }),
        el("dt", { text: "依据" }), el("dd", { text: s.reason }),
      ]);
      box.appendChild(dl);
      var alts = el("ol", { class: "alts" });
      s.alternatives.forEach(function (a) {
        var use = el("button", { type: "button", class: "small", text: "采用" });
        use.setAttribute("aria-label", "采用分类 " + a.category);
        use.addEventListener("click", function () { choose(a.category, a.lead_unit); });
        alts.appendChild(el("li", {}, [
          el("strong", { text: a.category }), " " + pct(a.probability) + " → " + unitName(a.lead_unit) + " ", use,
          el("br"), el("small", { text: "依据词：" + (a.words.join("、") || "—") }),
        ]));
      });
      box.appendChild(el("p", { class: "hint", text: "备选分类（前三）" }));
      box.appendChild(alts);

      if (!f("category_l1").getAttribute("data-touched")) f("category_l1").value = s.category || "";
      if (!f("lead_unit_id").getAttribute("data-touched")) f("lead_unit_id").value = s.lead_unit ? String(s.lead_unit.id) : "";
      if (!f("co_unit_ids").getAttribute("data-touched")) {
        var co = s.co_units.map(function (u) { return String(u.id); });
        Array.prototype.forEach.call(f("co_unit_ids").options, function (o) { o.selected = co.indexOf(o.value) >= 0; });
      }

      clear(answersBox);
      if (!s.answers.length) answersBox.appendChild(el("p", { class: "hint", text: "暂无相近的已办结答复" }));
      s.answers.forEach(function (a) {
        var quote = el("button", { type: "button", class: "small", text: "引用为答复" });
        quote.addEventListener("click", function () {
          var t = f("answer");
          t.value = t.value ? t.value + "\n" + a.reply_text : a.reply_text;
          store("form:" + form.id, readKept(form));
          t.focus();
        });
        answersBox.appendChild(el("div", { class: "card" }, [
          el("strong", { text: a.title }), " ",
          el("a", { href: "/cases/" + a.number, target: "_blank", rel: "noopener", text: a.number }),
          el("p", { text: a.reply_text }),
          el("small", { text: "共同词：" + a.shared_words.join("、") + " " }), quote,
        ]));
      });

      clear(dupBox);
      if (!s.duplicates.length) dupBox.appendChild(el("p", { class: "hint", text: "未发现同地点同类在办工单" }));
      s.duplicates.forEach(function (d) {
        var pick = el("button", { type: "button", class: "small", text: "选为并单目标" });
        pick.addEventListener("click", function () {
          f("primary_number").value = d.number;
          store("form:" + form.id, readKept(form));
          document.getElementById("btn-merge").focus();
        });
        dupBox.appendChild(el("div", { class: "card" }, [
          el("a", { href: "/cases/" + d.number, target: "_blank", rel: "noopener", text: d.number }), " ",
          el("span", { class: "tag", text: d.status_label }), " ", el("strong", { text: d.title }),
          el("p", { text: d.reason }), pick,
        ]));
      });
    }

    var suggest = debounce(function () {
      var title = f("title").value.trim(), content = f("content").value.trim();
      if ((title + content).length < 4) return;
      var mine = ++seq;
      say(status, "正在分析…", "busy");
      api("POST", "/api/console/suggest", {
        title: title, content: content, address: f("address").value.trim(), request_type: f("request_type").value,
      }).then(function (res) {
        if (mine !== seq) return; // a newer keystroke's answer is on its way
        if (!res.ok) { say(status, errorText(res), "error"); return; }
        say(status, "已根据当前内容更新", "ok");
        render(res.data);
      });
    }, 400);
    ["title", "content", "address"].forEach(function (n) { f(n).addEventListener("input", suggest); });
    f("request_type").addEventListener("change", suggest);

    // ---- the three ways to finish ----
    function caseBody() {
      var v = function (n) { return f(n).value.trim(); };
      var place = lastSuggestion ? lastSuggestion.place : { district_code: "", street_code: "" };
      return {
        channel: f("channel").value, request_type: f("request_type").value, urgency: f("urgency").value,
        title: v("title"), content: v("content"), address: v("address"),
        caller_name: v("caller_name"), caller_phone: v("caller_phone"), confidential: f("confidential").checked,
        category_l1: v("category_l1"),
        district_code: place.district_code, street_code: place.district_code ? place.street_code : "",
        source_id: draft.source_id,
      };
    }

    function finish(action, body, doneText) {
      var buttons = form.querySelectorAll("button.primary");
      Array.prototype.forEach.call(buttons, function (b) { b.disabled = true; });
      var release = function () { Array.prototype.forEach.call(buttons, function (b) { b.disabled = false; }); };
      var created = draft.number ? Promise.resolve({ ok: true, data: { number: draft.number } })
        : api("POST", "/api/cases?route=false" + (liveCall ? "&call_sid=" + encodeURIComponent(liveCall) : ""), caseBody());
      say(msg, "正在提交…", "busy");
      created.then(function (res) {
        if (!res.ok) { release(); say(msg, "未能建单：" + errorText(res), "error"); return null; }
        draft.number = res.data.number;
        store("draft", draft);
        return api("POST", "/api/cases/" + draft.number + "/" + action, body).then(function (r2) {
          release();
          if (!r2.ok) {
            say(msg, "工单 " + draft.number + " 已建立，但" + doneText + "未成功：" + errorText(r2) + "（修改后可再次提交，不会重复建单）", "error");
            return;
          }
          var number = draft.number;
          forget();
          draft = newDraft();
          lastSuggestion = null;
          form.reset();
          ["category_l1", "lead_unit_id", "co_unit_ids"].forEach(function (n) { f(n).removeAttribute("data-touched"); });
          [box, answersBox, dupBox, historyBox].forEach(clear);
          say(status, "", "");
          clear(msg);
          msg.className = "msg ok";
          msg.appendChild(document.createTextNode("工单 "));
          msg.appendChild(el("a", { href: "/cases/" + number, id: "last-case", text: number }));
          msg.appendChild(document.createTextNode(" " + doneText + "（" + r2.data.status_label + "）。可以接听下一个来电。"));
          f("caller_phone").focus();
        });
      });
    }

    function need(name, text) {
      if (f(name).value.trim()) return true;
      say(msg, text, "error");
      f(name).focus();
      return false;
    }

    document.getElementById("btn-answer").addEventListener("click", function () {
      if (!need("content", "请先填写诉求内容") || !need("answer", "直接办结须填写给市民的答复内容")) return;
      finish("answer-on-spot", { answer: f("answer").value.trim() }, "已直接办结");
    });
    document.getElementById("btn-dispatch").addEventListener("click", function () {
      if (!need("content", "请先填写诉求内容") || !need("lead_unit_id", "请选择主办单位")) return;
      var body = payloadOf(document.getElementById("dispatch-fields"));
      body.category_l1 = f("category_l1").value.trim();
      body.co_unit_ids = (body.co_unit_ids || []).filter(function (u) { return u !== body.lead_unit_id; });
      finish("dispatch", body, "已派单");
    });
    document.getElementById("btn-merge").addEventListener("click", function () {
      if (!need("content", "请先填写诉求内容") || !need("primary_number", "请填写或从疑似重复中选择主工单号")) return;
      finish("merge", { primary_number: f("primary_number").value.trim(), note: "坐席并单" }, "已并入 " + f("primary_number").value.trim());
    });
    form.addEventListener("submit", function (ev) { ev.preventDefault(); });

    if (f("caller_phone").value) lookUp();
    if ((f("title").value + f("content").value).trim()) suggest();
  }

  if (PAGE === "console") consolePage();
  wireActionForms();
})();
